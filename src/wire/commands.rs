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

const fn row(name: &'static str, reach: Reach) -> CommandRow {
    CommandRow {
        name,
        reach,
        collection: false,
        sequences: &[],
    }
}

const fn coll(name: &'static str, reach: Reach) -> CommandRow {
    CommandRow {
        name,
        reach,
        collection: true,
        sequences: &[],
    }
}

const fn seq(name: &'static str, reach: Reach, sequences: &'static [&'static str]) -> CommandRow {
    CommandRow {
        name,
        reach,
        collection: true,
        sequences,
    }
}

use Reach::*;
use Targets::*;

/// Every command, by group.
pub const COMMANDS: &[CommandRow] = &[
    // Handshake and connection (manual: hello, ping, buildInfo, connectionStatus,
    // listCommands, whatsmyuri; getLastError/getPrevError/resetError are per-connection
    // legacy write status, removed in 5.1 but still answered by DocumentDB).
    row("hello", Connection),
    row("isMaster", Connection),
    row("ismaster", Connection),
    row("ping", Connection),
    row("buildInfo", Connection),
    row("buildinfo", Connection),
    row("whatsmyuri", Connection),
    row("connectionStatus", Connection),
    row("listCommands", Connection),
    row("getLastError", Connection),
    row("getlasterror", Connection),
    row("getPrevError", Connection),
    row("resetError", Connection),
    // Sessions and transactions (manual "Sessions Commands"): the client's own session ids
    // and transaction; every operation inside a transaction is judged on its own.
    row("startSession", Connection),
    row("refreshSessions", Connection),
    row("endSessions", Connection),
    row("commitTransaction", Connection),
    row("abortTransaction", Connection),
    // ... but these act on every session or operation of the shared upstream user
    // (killSessions takes any session id; currentOp/killOp see every client's operations).
    row("killSessions", SharedPrincipal),
    row("killAllSessions", SharedPrincipal),
    row("killAllSessionsByPattern", SharedPrincipal),
    row("killOp", SharedPrincipal),
    row("currentOp", SharedPrincipal),
    // Authentication (manual "Authentication Commands"; getnonce and copydb* removed).
    row("saslStart", Authentication),
    row("saslContinue", Authentication),
    row("authenticate", Authentication),
    row("logout", Authentication),
    row("getnonce", Authentication),
    row("copydbsaslstart", Authentication),
    row("copydbgetnonce", Authentication),
    // Query and write (manual "Query and Write Operation Commands"; DocumentDB supports all).
    coll("find", ThisDatabase),
    seq("insert", ThisDatabase, &["documents"]),
    seq("update", ThisDatabase, &["updates"]),
    seq("delete", ThisDatabase, &["deletes"]),
    coll("findAndModify", ThisDatabase),
    coll("findandmodify", ThisDatabase),
    row("getMore", ThisDatabase),
    coll("killCursors", ThisDatabase),
    // bulkWrite is sent to admin and reaches exactly its nsInfo namespaces (8.0).
    CommandRow {
        name: "bulkWrite",
        reach: NamedOnly(BulkWriteNsInfo),
        collection: false,
        sequences: &["ops", "nsInfo"],
    },
    // Aggregation (manual "Aggregation Commands"; mapReduce and its alias).
    coll("aggregate", Named(Pipeline)),
    coll("count", ThisDatabase),
    coll("distinct", ThisDatabase),
    coll("mapReduce", Named(MapReduceOut)),
    coll("mapreduce", Named(MapReduceOut)),
    // Removed commands a DocumentDB or old server may still answer, confined to their database.
    coll("geoSearch", ThisDatabase),
    coll("geoNear", ThisDatabase),
    coll("group", ThisDatabase),
    coll("parallelCollectionScan", ThisDatabase),
    coll("text", ThisDatabase),
    row("filemd5", ThisDatabase),
    // Query plan cache (manual "Query Plan Cache Commands").
    coll("planCacheClear", ThisDatabase),
    coll("planCacheClearFilters", ThisDatabase),
    coll("planCacheListFilters", ThisDatabase),
    coll("planCacheSetFilter", ThisDatabase),
    // Collections, views, indexes (manual "Administration Commands").
    coll("create", Named(View)),
    coll("collMod", Named(View)),
    coll("drop", ThisDatabase),
    row("dropDatabase", ThisDatabase),
    coll("createIndexes", ThisDatabase),
    coll("dropIndexes", ThisDatabase),
    coll("deleteIndexes", ThisDatabase),
    coll("listIndexes", ThisDatabase),
    row("listCollections", ThisDatabase),
    coll("reIndex", ThisDatabase),
    coll("compact", ThisDatabase),
    coll("validate", ThisDatabase),
    coll("convertToCapped", ThisDatabase),
    coll("cloneCollectionAsCapped", ThisDatabase),
    coll("setIndexCommitQuorum", ThisDatabase),
    coll("cleanupStructuredEncryptionData", ThisDatabase),
    coll("compactStructuredEncryptionData", ThisDatabase),
    coll("listSearchIndexes", ThisDatabase),
    coll("createSearchIndexes", ThisDatabase),
    coll("dropSearchIndex", ThisDatabase),
    coll("updateSearchIndex", ThisDatabase),
    row("renameCollection", NamedOnly(RenameTo)),
    // Statistics of one database or collection (manual "Diagnostic Commands").
    row("dbStats", ThisDatabase),
    row("dbstats", ThisDatabase),
    coll("collStats", ThisDatabase),
    row("dbHash", ThisDatabase),
    row("dbhash", ThisDatabase),
    coll("dbCheck", ThisDatabase),
    row("dataSize", Named(NamespaceValue)),
    row("datasize", Named(NamespaceValue)),
    row("explain", Named(Explain)),
    // User and role management (manual "User Management Commands", "Role Management
    // Commands"): users and roles of other databases are named in documents.
    row("createUser", Named(RolesAndPrivileges)),
    row("updateUser", Named(RolesAndPrivileges)),
    row("grantRolesToUser", Named(RolesAndPrivileges)),
    row("revokeRolesFromUser", Named(RolesAndPrivileges)),
    row("createRole", Named(RolesAndPrivileges)),
    row("updateRole", Named(RolesAndPrivileges)),
    row("grantRolesToRole", Named(RolesAndPrivileges)),
    row("revokeRolesFromRole", Named(RolesAndPrivileges)),
    row("grantPrivilegesToRole", Named(RolesAndPrivileges)),
    row("revokePrivilegesFromRole", Named(RolesAndPrivileges)),
    row("dropUser", ThisDatabase),
    row("dropAllUsersFromDatabase", ThisDatabase),
    row("dropRole", ThisDatabase),
    row("dropAllRolesFromDatabase", ThisDatabase),
    row("usersInfo", Named(UsersOrRoles)),
    row("rolesInfo", Named(UsersOrRoles)),
    row("invalidateUserCache", AllDatabases),
    // Server-wide administration and diagnostics: `adminOnly()` in mongod or with an effect
    // on the whole server (profile's slowms/sampleRate/filter are global).
    row("listDatabases", AllDatabases),
    row("profile", AllDatabases),
    row("serverStatus", AllDatabases),
    row("top", AllDatabases),
    row("getParameter", AllDatabases),
    row("setParameter", AllDatabases),
    row("getCmdLineOpts", AllDatabases),
    row("hostInfo", AllDatabases),
    row("getLog", AllDatabases),
    row("logRotate", AllDatabases),
    row("logApplicationMessage", AllDatabases),
    row("fsync", AllDatabases),
    row("fsyncUnlock", AllDatabases),
    row("shutdown", AllDatabases),
    row("lockInfo", AllDatabases),
    row("connPoolStats", AllDatabases),
    row("connPoolSync", AllDatabases),
    row("shardConnPoolStats", AllDatabases),
    row("dropConnections", AllDatabases),
    row("features", AllDatabases),
    row("netstat", AllDatabases),
    row("validateDBMetadata", AllDatabases),
    row("autoCompact", AllDatabases),
    row("rotateCertificates", AllDatabases),
    row("setFeatureCompatibilityVersion", AllDatabases),
    row("getDefaultRWConcern", AllDatabases),
    row("setDefaultRWConcern", AllDatabases),
    row("getClusterParameter", AllDatabases),
    row("setClusterParameter", AllDatabases),
    row("setUserWriteBlockMode", AllDatabases),
    row("getAuditConfig", AllDatabases),
    row("setAuditConfig", AllDatabases),
    row("getFreeMonitoringStatus", AllDatabases),
    row("setFreeMonitoring", AllDatabases),
    row("setQuerySettings", AllDatabases),
    row("removeQuerySettings", AllDatabases),
    row("checkMetadataConsistency", AllDatabases),
    // DocumentDB: enable change streams for a database, a collection or everything
    // (`modifyChangeStreams`, DocumentDB "Using change streams").
    row("modifyChangeStreams", AllDatabases),
    // Replication (manual "Replication Commands").
    row("replSetGetStatus", AllDatabases),
    row("replSetGetConfig", AllDatabases),
    row("replSetStepDown", AllDatabases),
    row("replSetFreeze", AllDatabases),
    row("replSetInitiate", AllDatabases),
    row("replSetReconfig", AllDatabases),
    row("replSetMaintenance", AllDatabases),
    row("replSetSyncFrom", AllDatabases),
    row("replSetResizeOplog", AllDatabases),
    row("replSetAbortPrimaryCatchUp", AllDatabases),
    row("appendOplogNote", AllDatabases),
    // Sharding (manual "Sharding Commands"): cluster-wide, or naming a namespace or database.
    row("listShards", AllDatabases),
    row("addShard", AllDatabases),
    row("removeShard", AllDatabases),
    row("addShardToZone", AllDatabases),
    row("removeShardFromZone", AllDatabases),
    row("balancerStart", AllDatabases),
    row("balancerStop", AllDatabases),
    row("balancerStatus", AllDatabases),
    row("isdbgrid", AllDatabases),
    row("getShardMap", AllDatabases),
    row("shardingState", AllDatabases),
    row("transitionFromDedicatedConfigServer", AllDatabases),
    row("transitionToDedicatedConfigServer", AllDatabases),
    row("shardCollection", Named(NamespaceValue)),
    row("shardcollection", Named(NamespaceValue)),
    row("reshardCollection", Named(NamespaceValue)),
    row("refineCollectionShardKey", Named(NamespaceValue)),
    row("unshardCollection", Named(NamespaceValue)),
    row("moveCollection", Named(NamespaceValue)),
    row("abortMoveCollection", Named(NamespaceValue)),
    row("abortUnshardCollection", Named(NamespaceValue)),
    row("moveChunk", Named(NamespaceValue)),
    row("movechunk", Named(NamespaceValue)),
    row("moveRange", Named(NamespaceValue)),
    row("splitChunk", Named(NamespaceValue)),
    row("split", Named(NamespaceValue)),
    row("splitVector", Named(NamespaceValue)),
    row("mergeChunks", Named(NamespaceValue)),
    row("mergeAllChunksOnShard", Named(NamespaceValue)),
    row("clearJumboFlag", Named(NamespaceValue)),
    row("checkShardingIndex", Named(NamespaceValue)),
    row("cleanupOrphaned", Named(NamespaceValue)),
    row("getShardVersion", Named(NamespaceValue)),
    row("analyzeShardKey", Named(NamespaceValue)),
    row("configureQueryAnalyzer", Named(NamespaceValue)),
    row("balancerCollectionStatus", Named(NamespaceValue)),
    row("configureCollectionBalancing", Named(NamespaceValue)),
    row("abortReshardCollection", Named(NamespaceValue)),
    row("commitReshardCollection", Named(NamespaceValue)),
    row("cleanupReshardCollection", Named(NamespaceValue)),
    row("setAllowMigrations", Named(NamespaceValue)),
    row("updateZoneKeyRange", Named(NamespaceValue)),
    row("enableSharding", Named(DatabaseValue)),
    row("enablesharding", Named(DatabaseValue)),
    row("movePrimary", Named(DatabaseValue)),
    row("moveprimary", Named(DatabaseValue)),
    row("flushRouterConfig", Named(FlushRouterConfig)),
    row("flushrouterconfig", Named(FlushRouterConfig)),
    // Never forwarded: oplog application and legacy copy/clone (act as the server on other
    // databases or hosts), server-side JavaScript, commands servers send to each other.
    row("applyOps", Never),
    row("clone", Never),
    row("cloneCollection", Never),
    row("copydb", Never),
    row("copyDatabase", Never),
    row("eval", Never),
    row("$eval", Never),
    row("godinsert", Never),
    row("sleep", Never),
    row("replSetHeartbeat", Never),
    row("replSetRequestVotes", Never),
    row("replSetUpdatePosition", Never),
    row("handshake", Never),
    row("_isSelf", Never),
    row("setShardVersion", Never),
    row("resync", Never),
];

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
