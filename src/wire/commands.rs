//! The command table: the single home of command knowledge.
//!
//! One row per command name of MongoDB 8.0 and Amazon DocumentDB 5.0/8.0 (aliases are rows of
//! their own), and one row per aggregation stage. A command or stage missing from the table is
//! refused ([`crate::ResultCode::WireUnknownCommand`], [`crate::ResultCode::WireUnknownStage`]).
//!
//! Sources: the MongoDB 8.0 manual's "Database Commands" list
//! (<https://www.mongodb.com/docs/manual/reference/command/>), `src/mongo/db/commands` and
//! `src/mongo/db/pipeline` in mongodb/mongo (each command's `CmdXxx` registration, its
//! `adminOnly()` and the IDL of its request), and Amazon DocumentDB's "Supported MongoDB APIs,
//! operations, and data types" page
//! (<https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html>).

/// What a command can reach, and so how it is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Only the database it is sent to (`$db`), and the collection its value names.
    ThisDatabase,
    /// `$db` and the databases named in the listed fields (read by the analysis).
    Named(Targets),
    /// The databases named in the listed fields, and not `$db` (the server requires `admin`
    /// as the address but touches nothing there: `renameCollection`, `bulkWrite`).
    NamedOnly(Targets),
    /// Every database or the whole server: allowed only when the session may reach every
    /// database.
    AllDatabases,
    /// No database: the connection, the client's own logical sessions and transaction, static
    /// server facts. Needs no database in `db_names`.
    Connection,
    /// Acts on every session or operation of the upstream user, and one upstream user serves
    /// every client of the proxy: refused.
    SharedPrincipal,
    /// Client authentication: refused, the proxy authenticates upstream itself.
    Authentication,
    /// Never forwarded: legacy replication and copy, oplog application, server-side
    /// JavaScript, commands only servers send to each other.
    Never,
}

/// The fields that name further databases or namespaces, per kind of command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Targets {
    /// `pipeline` stages (see [`STAGES`]): `$out`, `$merge` `into.db`, `$lookup`/`$graphLookup`
    /// `from` (and `db`), `$unionWith` `db`, nested in `$facet`, `$lookup.pipeline`,
    /// `$unionWith.pipeline`, `$merge.whenMatched`.
    Pipeline,
    /// `out` (a collection, or `{replace|merge|reduce, db}`).
    MapReduceOut,
    /// The explained command (its own row decides).
    Explain,
    /// `viewOn` and `pipeline` of a view.
    View,
    /// The value (`from` namespace) and `to`.
    RenameTo,
    /// `nsInfo[].ns`.
    BulkWriteNsInfo,
    /// The value (`{user|role, db}` documents) and `forAllDBs`.
    UsersOrRoles,
    /// `roles[].db` and `privileges[].resource.db`.
    RolesAndPrivileges,
    /// The value is a full namespace `db.collection`.
    NamespaceValue,
    /// The value is a database name.
    DatabaseValue,
    /// The value is a namespace, a database, or absent (every database).
    FlushRouterConfig,
}

/// One command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRow {
    /// The name as the first key of the command document (case-sensitive).
    pub name: &'static str,
    /// What it reaches.
    pub reach: Reach,
    /// Its value is a collection of `$db` (fills the audit's `collection`).
    pub collection: bool,
    /// The OP_MSG document sequences (kind 1) it accepts: the identifiers of its array fields.
    pub sequences: &'static [&'static str],
}

/// Builds the table from groups `reach, value: collection|any[, sequences: [ids]] => names;`:
/// every name of a group gets the group's reach, whether its value is a collection of `$db`
/// (`collection`), and the document sequences it accepts (none unless listed).
macro_rules! command_rows {
    (@collection collection) => { true };
    (@collection any) => { false };
    (@rows [$($row:tt)*]) => { &[$($row)*] };
    (@rows [$($row:tt)*] $reach:expr, value: $value:ident, sequences: $sequences:tt
        => $($name:literal),+; $($group:tt)*) => {
        command_rows!(@rows [$($row)* $(CommandRow {
            name: $name,
            reach: $reach,
            collection: command_rows!(@collection $value),
            sequences: &$sequences,
        },)+] $($group)*)
    };
    (@rows [$($row:tt)*] $reach:expr, value: $value:ident => $($name:literal),+; $($group:tt)*) => {
        command_rows!(@rows [$($row)*]
            $reach, value: $value, sequences: [] => $($name),+; $($group)*)
    };
    ($($group:tt)*) => { command_rows!(@rows [] $($group)*) };
}

use Reach::*;
use Targets::*;

/// Every command, by group.
pub const COMMANDS: &[CommandRow] = command_rows! {
    // Handshake and connection (manual: hello, ping, buildInfo, connectionStatus,
    // listCommands, whatsmyuri; getLastError/getPrevError/resetError are per-connection
    // legacy write status, removed in 5.1 but still answered by DocumentDB).
    Connection, value: any => "hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo",
        "whatsmyuri", "connectionStatus", "listCommands", "getLastError", "getlasterror",
        "getPrevError", "resetError";
    // Sessions and transactions (manual "Sessions Commands"): the client's own session ids
    // and transaction; every operation inside a transaction is judged on its own.
    Connection, value: any => "startSession", "refreshSessions", "endSessions", "commitTransaction",
        "abortTransaction";
    // ... but these act on every session or operation of the shared upstream user
    // (killSessions takes any session id; currentOp/killOp see every client's operations).
    SharedPrincipal, value: any => "killSessions", "killAllSessions", "killAllSessionsByPattern",
        "killOp", "currentOp";
    // Authentication (manual "Authentication Commands"; getnonce and copydb* removed).
    Authentication, value: any => "saslStart", "saslContinue", "authenticate", "logout", "getnonce",
        "copydbsaslstart", "copydbgetnonce";
    // Query and write (manual "Query and Write Operation Commands"; DocumentDB supports all).
    ThisDatabase, value: collection => "find", "findAndModify", "findandmodify", "killCursors";
    ThisDatabase, value: collection, sequences: ["documents"] => "insert";
    ThisDatabase, value: collection, sequences: ["updates"] => "update";
    ThisDatabase, value: collection, sequences: ["deletes"] => "delete";
    ThisDatabase, value: any => "getMore";
    // bulkWrite is sent to admin and reaches exactly its nsInfo namespaces (8.0).
    NamedOnly(BulkWriteNsInfo), value: any, sequences: ["ops", "nsInfo"] => "bulkWrite";
    // Aggregation (manual "Aggregation Commands"; mapReduce and its alias).
    Named(Pipeline), value: collection => "aggregate";
    ThisDatabase, value: collection => "count", "distinct";
    Named(MapReduceOut), value: collection => "mapReduce", "mapreduce";
    // Removed commands a DocumentDB or old server may still answer, confined to their database.
    ThisDatabase, value: collection => "geoSearch", "geoNear", "group", "parallelCollectionScan",
        "text";
    ThisDatabase, value: any => "filemd5";
    // Query plan cache (manual "Query Plan Cache Commands").
    ThisDatabase, value: collection => "planCacheClear", "planCacheClearFilters",
        "planCacheListFilters", "planCacheSetFilter";
    // Collections, views, indexes (manual "Administration Commands").
    Named(View), value: collection => "create", "collMod";
    ThisDatabase, value: collection => "drop", "createIndexes", "dropIndexes", "deleteIndexes",
        "listIndexes", "reIndex", "compact", "validate", "convertToCapped",
        "cloneCollectionAsCapped", "setIndexCommitQuorum", "cleanupStructuredEncryptionData",
        "compactStructuredEncryptionData", "listSearchIndexes", "createSearchIndexes",
        "dropSearchIndex", "updateSearchIndex";
    ThisDatabase, value: any => "dropDatabase", "listCollections";
    NamedOnly(RenameTo), value: any => "renameCollection";
    // Statistics of one database or collection (manual "Diagnostic Commands").
    ThisDatabase, value: any => "dbStats", "dbstats", "dbHash", "dbhash";
    ThisDatabase, value: collection => "collStats", "dbCheck";
    Named(NamespaceValue), value: any => "dataSize", "datasize";
    Named(Explain), value: any => "explain";
    // User and role management (manual "User Management Commands", "Role Management
    // Commands"): users and roles of other databases are named in documents.
    Named(RolesAndPrivileges), value: any => "createUser", "updateUser", "grantRolesToUser",
        "revokeRolesFromUser", "createRole", "updateRole", "grantRolesToRole",
        "revokeRolesFromRole", "grantPrivilegesToRole", "revokePrivilegesFromRole";
    ThisDatabase, value: any => "dropUser", "dropAllUsersFromDatabase", "dropRole",
        "dropAllRolesFromDatabase";
    Named(UsersOrRoles), value: any => "usersInfo", "rolesInfo";
    AllDatabases, value: any => "invalidateUserCache";
    // Server-wide administration and diagnostics: `adminOnly()` in mongod or with an effect
    // on the whole server (profile's slowms/sampleRate/filter are global).
    AllDatabases, value: any => "listDatabases", "profile", "serverStatus", "top", "getParameter",
        "setParameter", "getCmdLineOpts", "hostInfo", "getLog", "logRotate",
        "logApplicationMessage", "fsync", "fsyncUnlock", "shutdown", "lockInfo", "connPoolStats",
        "connPoolSync", "shardConnPoolStats", "dropConnections", "features", "netstat",
        "validateDBMetadata", "autoCompact", "rotateCertificates", "setFeatureCompatibilityVersion",
        "getDefaultRWConcern", "setDefaultRWConcern", "getClusterParameter", "setClusterParameter",
        "setUserWriteBlockMode", "getAuditConfig", "setAuditConfig", "getFreeMonitoringStatus",
        "setFreeMonitoring", "setQuerySettings", "removeQuerySettings", "checkMetadataConsistency";
    // DocumentDB: enable change streams for a database, a collection or everything
    // (`modifyChangeStreams`, DocumentDB "Using change streams").
    AllDatabases, value: any => "modifyChangeStreams";
    // Replication (manual "Replication Commands").
    AllDatabases, value: any => "replSetGetStatus", "replSetGetConfig", "replSetStepDown",
        "replSetFreeze", "replSetInitiate", "replSetReconfig", "replSetMaintenance",
        "replSetSyncFrom", "replSetResizeOplog", "replSetAbortPrimaryCatchUp", "appendOplogNote";
    // Sharding (manual "Sharding Commands"): cluster-wide, or naming a namespace or database.
    AllDatabases, value: any => "listShards", "addShard", "removeShard", "addShardToZone",
        "removeShardFromZone", "balancerStart", "balancerStop", "balancerStatus", "isdbgrid",
        "getShardMap", "shardingState", "transitionFromDedicatedConfigServer",
        "transitionToDedicatedConfigServer";
    Named(NamespaceValue), value: any => "shardCollection", "shardcollection", "reshardCollection",
        "refineCollectionShardKey", "unshardCollection", "moveCollection", "abortMoveCollection",
        "abortUnshardCollection", "moveChunk", "movechunk", "moveRange", "splitChunk", "split",
        "splitVector", "mergeChunks", "mergeAllChunksOnShard", "clearJumboFlag",
        "checkShardingIndex", "cleanupOrphaned", "getShardVersion", "analyzeShardKey",
        "configureQueryAnalyzer", "balancerCollectionStatus", "configureCollectionBalancing",
        "abortReshardCollection", "commitReshardCollection", "cleanupReshardCollection",
        "setAllowMigrations", "updateZoneKeyRange";
    Named(DatabaseValue), value: any => "enableSharding", "enablesharding", "movePrimary",
        "moveprimary";
    Named(FlushRouterConfig), value: any => "flushRouterConfig", "flushrouterconfig";
    // Never forwarded: oplog application and legacy copy/clone (act as the server on other
    // databases or hosts), server-side JavaScript, commands servers send to each other.
    Never, value: any => "applyOps", "clone", "cloneCollection", "copydb", "copyDatabase", "eval",
        "$eval", "godinsert", "sleep", "replSetHeartbeat", "replSetRequestVotes",
        "replSetUpdatePosition", "handshake", "_isSelf", "setShardVersion", "resync";
};

/// The table row of a command name (exact, case-sensitive).
pub fn command(name: &str) -> Option<&'static CommandRow> {
    COMMANDS.iter().find(|r| r.name == name)
}

/// True for a connection command (see [`Reach::Connection`]).
pub fn is_connection_command(name: &str) -> bool {
    command(name).is_some_and(|r| r.reach == Reach::Connection)
}

/// What an aggregation stage can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageReach {
    /// Only the pipeline's own database.
    ThisDatabase,
    /// Names other collections or databases in its specification (read by the analysis).
    Targets,
    /// Every database or the whole server.
    AllDatabases,
    /// Every session or operation of the shared upstream user.
    SharedPrincipal,
}

/// Every aggregation stage (manual "Aggregation Stages"; DocumentDB "Aggregation pipeline
/// operators"), by reach.
pub const STAGES: &[(&str, StageReach)] = &[
    ("$addFields", StageReach::ThisDatabase),
    ("$bucket", StageReach::ThisDatabase),
    ("$bucketAuto", StageReach::ThisDatabase),
    ("$collStats", StageReach::ThisDatabase),
    ("$count", StageReach::ThisDatabase),
    ("$densify", StageReach::ThisDatabase),
    ("$documents", StageReach::ThisDatabase),
    ("$fill", StageReach::ThisDatabase),
    ("$geoNear", StageReach::ThisDatabase),
    ("$group", StageReach::ThisDatabase),
    ("$indexStats", StageReach::ThisDatabase),
    ("$limit", StageReach::ThisDatabase),
    ("$match", StageReach::ThisDatabase),
    ("$project", StageReach::ThisDatabase),
    ("$redact", StageReach::ThisDatabase),
    ("$replaceRoot", StageReach::ThisDatabase),
    ("$replaceWith", StageReach::ThisDatabase),
    ("$sample", StageReach::ThisDatabase),
    ("$search", StageReach::ThisDatabase),
    ("$searchMeta", StageReach::ThisDatabase),
    ("$vectorSearch", StageReach::ThisDatabase),
    ("$set", StageReach::ThisDatabase),
    ("$setWindowFields", StageReach::ThisDatabase),
    ("$skip", StageReach::ThisDatabase),
    ("$sort", StageReach::ThisDatabase),
    ("$sortByCount", StageReach::ThisDatabase),
    ("$unset", StageReach::ThisDatabase),
    ("$unwind", StageReach::ThisDatabase),
    ("$planCacheStats", StageReach::ThisDatabase),
    ("$listSearchIndexes", StageReach::ThisDatabase),
    ("$changeStreamSplitLargeEvent", StageReach::ThisDatabase),
    ("$rankFusion", StageReach::ThisDatabase),
    ("$scoreFusion", StageReach::ThisDatabase),
    ("$score", StageReach::ThisDatabase),
    ("$out", StageReach::Targets),
    ("$merge", StageReach::Targets),
    ("$lookup", StageReach::Targets),
    ("$graphLookup", StageReach::Targets),
    ("$unionWith", StageReach::Targets),
    ("$facet", StageReach::Targets),
    ("$changeStream", StageReach::Targets),
    ("$listCatalog", StageReach::AllDatabases),
    ("$listClusterCatalog", StageReach::AllDatabases),
    ("$queryStats", StageReach::AllDatabases),
    ("$shardedDataDistribution", StageReach::AllDatabases),
    ("$listSampledQueries", StageReach::AllDatabases),
    ("$querySettings", StageReach::AllDatabases),
    ("$currentOp", StageReach::SharedPrincipal),
    ("$listSessions", StageReach::SharedPrincipal),
    ("$listLocalSessions", StageReach::SharedPrincipal),
];

/// The reach of a stage name, if the table has it.
pub fn stage(name: &str) -> Option<StageReach> {
    STAGES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// The reason a shared-principal command or stage is refused.
pub(crate) fn shared_principal_reason(name: &str) -> String {
    format!(
        "`{name}` is refused: it acts on the sessions or operations of the database user, and one upstream database user serves every client of this proxy, so it would reach other clients' work"
    )
}
