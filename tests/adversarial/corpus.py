"""The adversarial corpus: hand-built wire messages that a proxy whose session may reach only
database `test` must never forward (must-deny), written from the MongoDB 8.0 and Amazon
DocumentDB references; each family names its sources.

Must-deny means: the message reaches a database other than `test`, acts for every client of
the one upstream user all clients share, or carries a field the proxy cannot have judged.
Such a message must be answered with a MongoDB error (no reply at all for `moreToCome`), and
the client's session must go on.

Every base case also runs as an OP_COMPRESSED twin (snappy, zlib and zstd in turn: the
compressors libdocauth decompresses) and, for OP_MSG, as a `moreToCome` twin.

Case ids are `family/name`, twins `family/name~zlib` (or ~snappy, ~zstd) and
`family/name~more`. tests/python/test_adversarial_corpus.py runs them through the C example
proxy; tests/adversarial/known_forwarded.txt lists the ones a tree still gets wrong.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Callable

import bson
from bson.binary import Binary, UuidRepresentation
from bson.code import Code
from bson.objectid import ObjectId

from . import framing as f
from .framing import raw_doc

ALLOWED_DB = "test"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    family: str
    build: Callable[[int], bytes]  # request id -> the whole message
    reply_op: int  # the opcode of the error reply it must get (0: no reply at all)
    # A close of the connection is an acceptable refusal (see must_deny).
    closing_ok: bool = False


Builder = Callable[[int], bytes]


def t(doc: dict[str, Any], db: str = ALLOWED_DB) -> dict[str, Any]:
    """`doc` with `$db` (default `test`, the session's database) appended."""
    d = dict(doc)
    d["$db"] = db
    return d


def msg(doc: Any, **kw: Any) -> Builder:
    return lambda rid: f.op_msg(rid, doc, **kw)


def other(coll: str = "secrets", db: str = "other") -> dict[str, str]:
    return {"db": db, "coll": coll}


def uuid4() -> Binary:
    return Binary.from_uuid(uuid.UUID("3b241101-e2bb-4255-8caf-4136c566a962"), UuidRepresentation.STANDARD)


# ---------------------------------------------------------------------------------------
# Families. Each returns [(name, builder)].


def cross_database() -> list[tuple[str, Builder]]:
    """Namespaces of another database in every field that can hold one.

    Sources: MongoDB 8.0 manual, aggregation stages $lookup (`from: {db, coll}`),
    $graphLookup, $unionWith (`coll: {db, coll}` / `{db, coll}`), $out (`{db, coll}`), $merge
    (`into: {db, coll}`), $facet; commands renameCollection (`to`), mapReduce (`out.db`),
    cloneCollectionAsCapped, create (`viewOn`, `pipeline`), collMod (`viewOn`, `pipeline`),
    explain, bulkWrite (`nsInfo`), dataSize (a full namespace), usersInfo/rolesInfo
    (`forAllDBs`, `{user|role, db}` documents), grantRolesToUser, revokeRolesFromUser,
    grantPrivilegesToRole (`resource: {db}` / `{cluster: true}`), createUser/createRole/
    updateUser (`roles: [{role, db}]`); mongod src/mongo/db/pipeline/document_source_lookup.cpp,
    document_source_union_with.cpp, document_source_out.cpp, document_source_merge.cpp,
    src/mongo/db/commands/rename_collection_cmd.cpp, map_reduce_command_base.h,
    user_management_commands.cpp.
    """
    lookup_other = {"$lookup": {"from": other(), "localField": "_id", "foreignField": "_id", "as": "j"}}
    agg = lambda pipeline, coll="c": t({"aggregate": coll, "pipeline": pipeline, "cursor": {}})  # noqa: E731
    cases: list[tuple[str, Any]] = [
        ("lookup_from_db", agg([lookup_other])),
        ("lookup_from_db_admin", agg([{"$lookup": {"from": other("system.users", "admin"), "localField": "a", "foreignField": "b", "as": "j"}}])),
        ("lookup_pipeline_form_from_db", agg([{"$lookup": {"from": other(), "pipeline": [{"$match": {}}], "as": "j"}}])),
        ("lookup_nested_in_lookup", agg([{"$lookup": {"from": "c2", "pipeline": [lookup_other], "as": "j"}}])),
        ("lookup_in_facet", agg([{"$facet": {"a": [lookup_other]}}])),
        ("lookup_in_unionwith", agg([{"$unionWith": {"coll": "c2", "pipeline": [lookup_other]}}])),
        (
            "lookup_three_deep",
            agg([{"$lookup": {"from": "c2", "as": "j", "pipeline": [{"$unionWith": {"coll": "c3", "pipeline": [{"$facet": {"x": [lookup_other]}}]}}]}}]),
        ),
        ("graphlookup_from_db", agg([{"$graphLookup": {"from": other(), "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g"}}])),
        ("unionwith_db_coll", agg([{"$unionWith": other()}])),
        ("unionwith_coll_doc", agg([{"$unionWith": {"coll": other(), "pipeline": []}}])),
        ("unionwith_db_field", agg([{"$unionWith": {"coll": "secrets", "db": "other", "pipeline": []}}])),
        ("out_db", agg([{"$out": other("copy")}])),
        ("out_db_admin", agg([{"$out": other("x", "admin")}])),
        ("out_db_timeseries", agg([{"$out": {"db": "other", "coll": "ts", "timeseries": {"timeField": "t"}}}])),
        ("merge_into_db", agg([{"$merge": {"into": other("copy")}}])),
        ("merge_into_db_on", agg([{"$merge": {"into": other("copy"), "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}}])),
        ("aggregate_on_other_collectionless", t({"aggregate": 1, "pipeline": [{"$documents": [{"a": 1}]}, {"$out": other()}], "cursor": {}})),
        ("explain_aggregate_lookup", t({"explain": agg([lookup_other]) | {"$db": ALLOWED_DB}, "verbosity": "queryPlanner"})),
        ("explain_aggregate_merge", t({"explain": {"aggregate": "c", "pipeline": [{"$merge": {"into": other()}}], "cursor": {}}})),
        ("explain_inner_db_other", t({"explain": {"find": "secrets", "$db": "other"}})),
        ("explain_inner_db_admin", t({"explain": {"find": "system.users", "filter": {}, "$db": "admin"}})),
        ("explain_nested_explain", t({"explain": {"explain": {"aggregate": "c", "pipeline": [{"$out": other()}], "cursor": {}}}})),
        ("explain_mapreduce_out_db", t({"explain": {"mapReduce": "c", "map": Code("function(){}"), "reduce": Code("function(k,v){return 1}"), "out": {"replace": "x", "db": "other"}}})),
        ("rename_to_other_on_admin", t({"renameCollection": "test.c", "to": "other.c"}, "admin")),
        ("rename_to_other_on_test", t({"renameCollection": "test.c", "to": "other.c"})),
        ("rename_from_other_to_test", t({"renameCollection": "other.secrets", "to": "test.stolen"}, "admin")),
        ("rename_to_admin", t({"renameCollection": "test.c", "to": "admin.system.users"}, "admin")),
        ("rename_drop_target_other", t({"renameCollection": "test.c", "to": "other.c", "dropTarget": True}, "admin")),
        ("mapreduce_out_replace_db", t({"mapReduce": "c", "map": Code("function(){emit(1,1)}"), "reduce": Code("function(k,v){return 1}"), "out": {"replace": "x", "db": "other"}})),
        ("mapreduce_out_merge_db", t({"mapReduce": "c", "map": Code("function(){emit(1,1)}"), "reduce": Code("function(k,v){return 1}"), "out": {"merge": "x", "db": "other"}})),
        ("mapreduce_out_reduce_db", t({"mapreduce": "c", "map": Code("function(){emit(1,1)}"), "reduce": Code("function(k,v){return 1}"), "out": {"reduce": "x", "db": "admin"}})),
        ("clone_collection_as_capped_other_db", t({"cloneCollectionAsCapped": "secrets", "toCollection": "c", "size": 4096}, "other")),
        ("create_view_lookup_other", t({"create": "v", "viewOn": "c", "pipeline": [lookup_other]})),
        ("create_view_unionwith_other", t({"create": "v", "viewOn": "c", "pipeline": [{"$unionWith": other()}]})),
        ("create_view_graphlookup_other", t({"create": "v", "viewOn": "c", "pipeline": [{"$graphLookup": {"from": other(), "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g"}}]})),
        ("collmod_view_lookup_other", t({"collMod": "v", "viewOn": "c", "pipeline": [lookup_other]})),
        ("collmod_view_unionwith_other", t({"collMod": "v", "viewOn": "c", "pipeline": [{"$unionWith": {"coll": other(), "pipeline": []}}]})),
        ("bulkwrite_nsinfo_other_on_admin", t({"bulkWrite": 1, "ops": [{"insert": 0, "document": {"a": 1}}], "nsInfo": [{"ns": "other.secrets"}]}, "admin")),
        ("bulkwrite_nsinfo_other_on_test", t({"bulkWrite": 1, "ops": [{"insert": 0, "document": {"a": 1}}], "nsInfo": [{"ns": "other.secrets"}]})),
        ("bulkwrite_nsinfo_mixed", t({"bulkWrite": 1, "ops": [{"insert": 0, "document": {}}, {"delete": 1, "filter": {}, "multi": True}], "nsInfo": [{"ns": "test.c"}, {"ns": "other.secrets"}]}, "admin")),
        ("datasize_other_ns", t({"dataSize": "other.secrets"})),
        ("usersinfo_for_all_dbs", t({"usersInfo": {"forAllDBs": True}})),
        ("usersinfo_user_db_admin", t({"usersInfo": {"user": "root", "db": "admin"}})),
        ("usersinfo_list_other_db", t({"usersInfo": [{"user": "app", "db": "other"}, "local"]})),
        ("usersinfo_external", t({"usersInfo": {"user": "arn:aws:iam::123456789012:role/teleport-docdb-user", "db": "$external"}, "showCredentials": True})),
        ("rolesinfo_role_db_admin", t({"rolesInfo": {"role": "root", "db": "admin"}, "showPrivileges": True})),
        ("rolesinfo_list_other_db", t({"rolesInfo": [{"role": "r", "db": "other"}]})),
        ("rolesinfo_for_all_dbs", t({"rolesInfo": {"forAllDBs": True}})),
        ("grant_roles_admin_root", t({"grantRolesToUser": "app", "roles": [{"role": "root", "db": "admin"}]})),
        ("grant_roles_other_db", t({"grantRolesToUser": "app", "roles": [{"role": "readWrite", "db": "other"}]})),
        ("revoke_roles_admin", t({"revokeRolesFromUser": "app", "roles": [{"role": "read", "db": "admin"}]})),
        ("grant_roles_to_role_admin", t({"grantRolesToRole": "r", "roles": [{"role": "clusterAdmin", "db": "admin"}]})),
        ("grant_privileges_other_db", t({"grantPrivilegesToRole": "r", "privileges": [{"resource": {"db": "other", "collection": ""}, "actions": ["find"]}]})),
        ("grant_privileges_any_db", t({"grantPrivilegesToRole": "r", "privileges": [{"resource": {"db": "", "collection": ""}, "actions": ["find"]}]})),
        ("grant_privileges_cluster", t({"grantPrivilegesToRole": "r", "privileges": [{"resource": {"cluster": True}, "actions": ["shutdown"]}]})),
        ("revoke_privileges_other_db", t({"revokePrivilegesFromRole": "r", "privileges": [{"resource": {"db": "other", "collection": "x"}, "actions": ["find"]}]})),
        ("create_user_role_admin", t({"createUser": "evil", "pwd": "pw", "roles": [{"role": "root", "db": "admin"}]})),
        ("create_user_role_other", t({"createUser": "evil", "pwd": "pw", "roles": [{"role": "dbOwner", "db": "other"}]})),
        ("update_user_role_admin", t({"updateUser": "app", "roles": [{"role": "userAdminAnyDatabase", "db": "admin"}]})),
        ("create_role_inherits_admin", t({"createRole": "r2", "privileges": [], "roles": [{"role": "root", "db": "admin"}]})),
        ("create_role_privilege_other", t({"createRole": "r3", "privileges": [{"resource": {"db": "other", "collection": ""}, "actions": ["insert"]}], "roles": []})),
        ("update_role_privilege_cluster", t({"updateRole": "r", "privileges": [{"resource": {"anyResource": True}, "actions": ["anyAction"]}]})),
        ("find_on_other", t({"find": "secrets", "filter": {}}, "other")),
        ("insert_on_admin", t({"insert": "system.users", "documents": [{"_id": "x"}]}, "admin")),
        ("drop_database_other", t({"dropDatabase": 1}, "other")),
        ("list_collections_local", t({"listCollections": 1}, "local")),
        ("find_config", t({"find": "system.sessions"}, "config")),
        ("db_case_variant", t({"find": "c"}, "Test")),
        ("db_upper", t({"find": "c"}, "TEST")),
        ("external_db", t({"find": "c"}, "$external")),
    ]
    out = [(name, msg(doc)) for name, doc in cases]
    # Pipelines nested as deep as the server allows, and far deeper (BSON depth limit 200 in
    # mongod's BSONDepth; an analysis that recurses without a bound would overflow its stack).
    out += [(f"lookup_nested_{n}_deep", (lambda d: lambda rid: f.op_msg(rid, d))(_nested_lookup(n, lookup_other))) for n in (40, 1000)]
    return out


def _nested_lookup(levels: int, innermost: dict[str, Any]) -> Any:
    """An aggregate whose $lookup pipelines nest `levels` deep around `innermost` (built as raw
    BSON bottom-up: bson's encoder recurses)."""
    stage: Any = raw_doc(*innermost.items())
    for _ in range(levels):
        stage = raw_doc(("$lookup", raw_doc(("from", "c"), ("as", "j"), ("pipeline", [stage]))))
    return raw_doc(("aggregate", "c"), ("pipeline", [stage]), ("cursor", {}), ("$db", ALLOWED_DB))


def admin_commands() -> list[tuple[str, Builder]]:
    """Cluster and admin commands sent to `test` (and a few to `admin`): their reach is every
    database or the server itself, whatever `$db` says.

    Sources: MongoDB 8.0 manual, "Database Commands" (Administration, Diagnostic,
    Replication, Sharding sections); mongod src/mongo/db/commands (adminOnly() commands:
    list_databases.cpp, shutdown_d.cpp, fsync.cpp, parameters.cpp, generic_servers.cpp
    (getCmdLineOpts, logRotate, getLog, clearLog, hostInfo), server_status.cpp,
    feature_compatibility_version.cpp, rwc_defaults_commands.cpp, cluster_server_parameter_cmds,
    connection_status / conn_pool_stats, top_command.cpp, lock_info.cpp,
    rotate_certificates_command.cpp, validate_db_metadata_cmd.cpp); DocumentDB "Supported
    MongoDB APIs, operations and data types" (listDatabases, serverStatus, hostInfo,
    getParameter, currentOp, killOp, top, logRotate are listed as supported).
    """
    names: list[tuple[str, dict[str, Any]]] = [
        ("listDatabases", {"listDatabases": 1}),
        ("listDatabases_nameonly", {"listDatabases": 1, "nameOnly": True, "authorizedDatabases": False}),
        ("shutdown", {"shutdown": 1, "force": True}),
        ("fsync", {"fsync": 1, "lock": True}),
        ("fsyncUnlock", {"fsyncUnlock": 1}),
        ("setParameter", {"setParameter": 1, "logLevel": 5}),
        ("getParameter", {"getParameter": "*"}),
        ("replSetGetStatus", {"replSetGetStatus": 1}),
        ("replSetGetConfig", {"replSetGetConfig": 1}),
        ("replSetReconfig", {"replSetReconfig": {"_id": "rs0", "version": 2, "members": []}, "force": True}),
        ("replSetStepDown", {"replSetStepDown": 60}),
        ("replSetFreeze", {"replSetFreeze": 60}),
        ("replSetMaintenance", {"replSetMaintenance": True}),
        ("serverStatus", {"serverStatus": 1}),
        ("hostInfo", {"hostInfo": 1}),
        ("getCmdLineOpts", {"getCmdLineOpts": 1}),
        ("logRotate", {"logRotate": 1}),
        ("getLog", {"getLog": "global"}),
        ("clearLog", {"clearLog": "global"}),
        ("setFeatureCompatibilityVersion", {"setFeatureCompatibilityVersion": "7.0", "confirm": True}),
        ("setDefaultRWConcern", {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": 0}}),
        ("getDefaultRWConcern", {"getDefaultRWConcern": 1}),
        ("setClusterParameter", {"setClusterParameter": {"changeStreamOptions": {"preAndPostImages": {"expireAfterSeconds": 1}}}}),
        ("getClusterParameter", {"getClusterParameter": "*"}),
        ("dropConnections", {"dropConnections": 1, "hostAndPort": ["127.0.0.1:27017"]}),
        ("connPoolStats", {"connPoolStats": 1}),
        ("connPoolSync", {"connPoolSync": 1}),
        ("top", {"top": 1}),
        ("lockInfo", {"lockInfo": 1}),
        ("rotateCertificates", {"rotateCertificates": 1}),
        ("setProfilingFilterGlobally", {"setProfilingFilterGlobally": 1, "filter": {}}),
        ("validateDBMetadata", {"validateDBMetadata": 1, "apiParameters": {"version": "1", "strict": True}}),
        ("invalidateUserCache", {"invalidateUserCache": 1}),
        ("listShards", {"listShards": 1}),
        ("enableSharding", {"enableSharding": "other"}),
        ("shardCollection_other", {"shardCollection": "other.secrets", "key": {"_id": 1}}),
        ("movePrimary_other", {"movePrimary": "other", "to": "shard0"}),
        ("balancerStart", {"balancerStart": 1}),
        ("addShard", {"addShard": "rs1/host:27017"}),
        ("flushRouterConfig", {"flushRouterConfig": 1}),
        ("cleanupOrphaned_other", {"cleanupOrphaned": "other.secrets"}),
        ("analyzeShardKey_other", {"analyzeShardKey": "other.secrets", "key": {"a": 1}}),
        ("configureQueryAnalyzer_other", {"configureQueryAnalyzer": "other.secrets", "mode": "full", "samplesPerSecond": 1}),
        ("checkShardingIndex_other", {"checkShardingIndex": "other.secrets", "keyPattern": {"a": 1}}),
        ("splitVector_other", {"splitVector": "other.secrets", "keyPattern": {"_id": 1}, "maxChunkSizeBytes": 1024}),
        ("getShardVersion_other", {"getShardVersion": "other.secrets"}),
        ("balancerCollectionStatus_other", {"balancerCollectionStatus": "other.secrets"}),
        ("reshardCollection_other", {"reshardCollection": "other.secrets", "key": {"a": 1}}),
        ("setQuerySettings_other", {"setQuerySettings": {"find": "secrets", "filter": {}, "$db": "other"}, "settings": {"reject": True}}),
        ("internalRename_other", {"internalRenameIfOptionsAndIndexesMatch": 1, "from": "other.secrets", "to": "test.stolen", "collectionOptions": {}, "indexes": []}),
        ("flushRoutingTableCache_other", {"_flushRoutingTableCacheUpdates": "other.secrets"}),
        ("isSelf", {"_isSelf": 1}),
        ("listCatalog_collectionless", {"aggregate": 1, "pipeline": [{"$listCatalog": {}}], "cursor": {}}),
        ("changestream_all_cluster", {"aggregate": 1, "pipeline": [{"$changeStream": {"allChangesForCluster": True}}], "cursor": {}}),
        ("shardedDataDistribution", {"aggregate": 1, "pipeline": [{"$shardedDataDistribution": {}}], "cursor": {}}),
        ("querySettings", {"aggregate": 1, "pipeline": [{"$querySettings": {}}], "cursor": {}}),
    ]
    out = [(name, msg(t(doc))) for name, doc in names]
    # The same commands where they belong, on `admin` (denied by the policy's db_names).
    out += [
        ("listDatabases_on_admin", msg(t({"listDatabases": 1}, "admin"))),
        ("shutdown_on_admin", msg(t({"shutdown": 1}, "admin"))),
        ("dropAllUsersFromDatabase_admin", msg(t({"dropAllUsersFromDatabase": 1}, "admin"))),
        ("dropAllRolesFromDatabase_admin", msg(t({"dropAllRolesFromDatabase": 1}, "admin"))),
        ("dropUser_admin", msg(t({"dropUser": "root"}, "admin"))),
        ("createUser_admin", msg(t({"createUser": "evil", "pwd": "pw", "roles": ["root"]}, "admin"))),
        ("serverStatus_on_admin", msg(t({"serverStatus": 1}, "admin"))),
        # DocumentDB's own admin command (DocumentDB developer guide, "Using change streams"):
        # enables change streams for the named database, or all of them.
        ("modifyChangeStreams_other", msg(t({"modifyChangeStreams": 1, "database": "other", "collection": "", "enable": True}))),
        ("modifyChangeStreams_all", msg(t({"modifyChangeStreams": 1, "database": "", "collection": "", "enable": True}, "admin"))),
        # profile's `slowms` and `sampleRate` are server-wide ("This setting is global: it
        # affects all databases", MongoDB manual, profile command).
        ("profile_sets_global_slowms", msg(t({"profile": 0, "slowms": 0, "sampleRate": 1.0}))),
        ("explain_listDatabases", msg(t({"explain": {"listDatabases": 1}}))),
        ("explain_serverStatus", msg(t({"explain": {"serverStatus": 1}}))),
    ]
    return out


def shared_principal() -> list[tuple[str, Builder]]:
    """Commands that act on every session or operation of the one upstream user all clients
    of the proxy share (one client must not see or end another's work).

    Sources: MongoDB 8.0 manual killSessions ("an empty array kills all sessions of the
    user"), killAllSessions, killAllSessionsByPattern, killOp, currentOp, $currentOp,
    $listSessions, $listLocalSessions; mongod src/mongo/db/commands/kill_sessions_command.cpp,
    kill_all_sessions_command.cpp, kill_all_sessions_by_pattern_command.cpp,
    kill_op_cmd_base.cpp, current_op.cpp, src/mongo/db/pipeline/document_source_list_sessions.cpp;
    DocumentDB supported APIs (killOp, currentOp, $currentOp).
    """
    pipeline = lambda stage, coll=1: {"aggregate": coll, "pipeline": [stage], "cursor": {}}  # noqa: E731
    docs: list[tuple[str, Any]] = [
        ("killSessions_all", t({"killSessions": []})),
        ("killSessions_one", t({"killSessions": [{"id": uuid4()}]})),
        ("killSessions_on_admin", t({"killSessions": []}, "admin")),
        ("killAllSessions", t({"killAllSessions": []})),
        ("killAllSessions_user", t({"killAllSessions": [{"user": "arn:aws:iam::123456789012:role/teleport-docdb-user", "db": "$external"}]})),
        ("killAllSessionsByPattern", t({"killAllSessionsByPattern": [{}]})),
        ("killAllSessionsByPattern_lsid", t({"killAllSessionsByPattern": [{"lsid": {"id": uuid4()}}]})),
        ("killOp_test", t({"killOp": 1, "op": 12345})),
        ("killOp_admin", t({"killOp": 1, "op": 12345}, "admin")),
        ("currentOp_test", t({"currentOp": 1})),
        ("currentOp_all", t({"currentOp": 1, "$all": True})),
        ("currentOp_admin", t({"currentOp": 1, "$ownOps": False}, "admin")),
        ("currentOp_stage_test", t(pipeline({"$currentOp": {}}))),
        ("currentOp_stage_all_users", t(pipeline({"$currentOp": {"allUsers": True, "idleSessions": True}}), "admin")),
        ("currentOp_stage_in_unionwith", t({"aggregate": "c", "pipeline": [{"$unionWith": {"coll": "c", "pipeline": [{"$currentOp": {}}]}}], "cursor": {}})),
        ("currentOp_stage_in_lookup", t({"aggregate": "c", "pipeline": [{"$lookup": {"from": "c", "pipeline": [{"$currentOp": {}}], "as": "ops"}}], "cursor": {}})),
        ("currentOp_stage_in_facet", t({"aggregate": "c", "pipeline": [{"$facet": {"ops": [{"$currentOp": {}}]}}], "cursor": {}})),
        ("listSessions_test", t(pipeline({"$listSessions": {}}, "c"))),
        ("listSessions_config", t(pipeline({"$listSessions": {"allUsers": True}}, "system.sessions"), "config")),
        ("listLocalSessions", t(pipeline({"$listLocalSessions": {}}))),
        ("listLocalSessions_all_users", t(pipeline({"$listLocalSessions": {"allUsers": True}}))),
        ("listLocalSessions_in_view", t({"create": "v_sessions", "viewOn": "c", "pipeline": [{"$listLocalSessions": {}}]})),
        ("explain_currentOp_stage", t({"explain": pipeline({"$currentOp": {}})})),
        ("explain_killSessions", t({"explain": {"killSessions": []}})),
        ("explain_killOp", t({"explain": {"killOp": 1, "op": 12345}})),
    ]
    return [(name, msg(doc)) for name, doc in docs]


def auth_and_legacy() -> list[tuple[str, Builder]]:
    """Authentication (the proxy authenticates upstream itself; a client's would replace or
    end the shared login) and legacy commands that reach other databases or run code there.

    Sources: MongoDB manual saslStart/saslContinue/authenticate/logout, mongodb/specifications
    source/auth/auth.md; applyOps (`ns`, `ui`, nested applyOps in a `c` op) and
    src/mongo/db/commands/apply_ops_cmd.cpp; removed commands copydb/clone/cloneCollection/
    copydbgetnonce/eval (4.2 release notes) that older servers and look-alikes still know.
    """
    sasl = {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": Binary(b"n,,n=root,r=abc"), "autoAuthorize": 1}
    docs: list[tuple[str, Any]] = [
        ("saslStart_test", t(sasl)),
        ("saslStart_admin", t(sasl, "admin")),
        ("saslStart_external_aws", t({"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": Binary(b"\x05\x00\x00\x00\x00")}, "$external")),
        ("saslContinue_test", t({"saslContinue": 1, "conversationId": 1, "payload": Binary(b"")})),
        ("authenticate_x509", t({"authenticate": 1, "mechanism": "MONGODB-X509", "user": "CN=root"}, "$external")),
        ("authenticate_test", t({"authenticate": 1, "mechanism": "MONGODB-CR", "user": "root", "nonce": "x", "key": "y"})),
        ("logout_test", t({"logout": 1})),
        ("logout_admin", t({"logout": 1}, "admin")),
        ("applyOps_insert_other", t({"applyOps": [{"op": "i", "ns": "other.secrets", "o": {"_id": 1}}]})),
        ("applyOps_command_other", t({"applyOps": [{"op": "c", "ns": "other.$cmd", "o": {"drop": "secrets"}}]})),
        ("applyOps_nested_other", t({"applyOps": [{"op": "c", "ns": "test.$cmd", "o": {"applyOps": [{"op": "d", "ns": "other.secrets", "o": {"_id": 1}}]}}]})),
        ("applyOps_by_uuid", t({"applyOps": [{"op": "i", "ns": "test.c", "ui": uuid4(), "o": {"_id": 1}}]})),
        ("applyOps_precondition_other", t({"applyOps": [{"op": "n", "ns": "", "o": {}}], "preCondition": [{"ns": "other.secrets", "q": {}, "res": {}}]})),
        ("copydb", t({"copydb": 1, "fromdb": "other", "todb": "test"}, "admin")),
        ("copydb_on_test", t({"copydb": 1, "fromdb": "admin", "todb": "test"})),
        ("copydbgetnonce", t({"copydbgetnonce": 1, "fromhost": "localhost"}, "admin")),
        ("clone", t({"clone": "localhost:27017"})),
        ("cloneCollection", t({"cloneCollection": "other.secrets", "from": "localhost:27017"})),
        ("eval", t({"eval": Code("db.getSiblingDB('admin').system.users.find().toArray()")})),
        ("dollar_eval", t({"$eval": Code("db.getSiblingDB('other').dropDatabase()")})),
        ("getnonce", t({"getnonce": 1})),
        ("explain_saslStart", t({"explain": sasl})),
        ("explain_applyOps_other", t({"explain": {"applyOps": [{"op": "i", "ns": "other.secrets", "o": {"_id": 1}}]}})),
    ]
    return [(name, msg(doc)) for name, doc in docs]


def bad_names() -> list[tuple[str, Builder]]:
    """Database and namespace names the server would not accept (or would read as another
    database): refused with InvalidNamespace before they are judged, cached or audited.

    Sources: MongoDB 8.0 manual "Naming Restrictions" (database: not empty, < 64 bytes, none of
    `/\\. "$*<>:|?` nor NUL; namespace <= 255 bytes); mongod src/mongo/db/database_name.h,
    namespace_string.cpp (validDBName, validCollectionName); find/listIndexes/count by
    collection UUID (find_command.idl `namespaceOrUUID`).
    """
    cases: list[tuple[str, Any]] = []
    for label, db in [
        ("dotted", "test.other"),
        ("dotted_prefix", "test.admin"),
        ("slash", "test/../admin"),
        ("backslash", "test\\admin"),
        ("space", "te st"),
        ("quote", 'te"st'),
        ("dollar", "test$"),
        ("star", "test*"),
        ("lt", "test<"),
        ("gt", "test>"),
        ("colon", "test:"),
        ("pipe", "test|"),
        ("question", "test?"),
        ("nul", "test\x00admin"),
        ("empty", ""),
        ("dollar_cmd", "$cmd"),
        ("test_dollar_cmd", "test.$cmd"),
        ("64_bytes", "test" + "x" * 60),
        ("200_bytes", "t" * 200),
    ]:
        cases.append((f"db_{label}", t({"find": "c", "filter": {}}, db)))
    cases += [
        ("db_not_a_string", {"find": "c", "$db": 7}),
        ("db_document", {"find": "c", "$db": {"db": "test"}}),
        ("db_array", {"find": "c", "$db": ["test", "admin"]}),
        ("db_missing", {"find": "c", "filter": {}}),
        ("coll_empty", t({"find": ""})),
        ("coll_nul", t({"find": "c\x00x"})),
        ("coll_dollar_cmd", t({"find": "$cmd"})),
        ("coll_not_a_string", t({"find": {"db": "other", "coll": "secrets"}})),
        ("namespace_256_bytes", t({"find": "c" * 252})),
        ("namespace_300_bytes_insert", t({"insert": "c" * 300, "documents": [{"a": 1}]})),
        ("rename_to_long", t({"renameCollection": "test.c", "to": "test." + "c" * 260}, "admin")),
        ("find_by_uuid", t({"find": uuid4()})),
        ("list_indexes_by_uuid", t({"listIndexes": uuid4()})),
        ("count_by_uuid", t({"count": uuid4()})),
        ("aggregate_by_uuid", t({"aggregate": uuid4(), "pipeline": [], "cursor": {}})),
        ("collmod_by_uuid", t({"collMod": uuid4(), "validator": {}})),
        # Bad database names inside namespace fields, not only in $db.
        ("out_db_dotted", t({"aggregate": "c", "pipeline": [{"$out": {"db": "test.admin", "coll": "x"}}], "cursor": {}})),
        ("merge_into_db_slash", t({"aggregate": "c", "pipeline": [{"$merge": {"into": {"db": "test/../admin", "coll": "x"}}}], "cursor": {}})),
        ("lookup_from_db_empty", t({"aggregate": "c", "pipeline": [{"$lookup": {"from": {"db": "", "coll": "x"}, "pipeline": [], "as": "j"}}], "cursor": {}})),
        ("lookup_from_db_nul", t({"aggregate": "c", "pipeline": [{"$lookup": {"from": {"db": "test\x00admin", "coll": "x"}, "pipeline": [], "as": "j"}}], "cursor": {}})),
        ("rename_to_nul", t({"renameCollection": "test.c", "to": "test\x00admin.c"}, "admin")),
        ("rename_to_no_dot", t({"renameCollection": "test.c", "to": "testc"}, "admin")),
        ("rename_to_db_64_bytes", t({"renameCollection": "test.c", "to": "test" + "x" * 60 + ".c"}, "admin")),
    ]
    return [(name, msg(doc)) for name, doc in cases]


def unknown_fields() -> list[tuple[str, Builder]]:
    """Top-level fields outside the generic-argument allowlist that change what the server
    does (which tenant, which resume point, read preference folded in after the proxy looked,
    impersonation): refused, since the proxy cannot have judged them.

    Sources: mongod src/mongo/idl/generic_argument.idl (generic_args_unstable_v1: $audit,
    $client, $configServerState, $oplogQueryData, $queryOptions, $replData, $configTime,
    $topologyTime, $tenant, expectPrefix); find_command.idl ($_requestResumeToken,
    $_resumeAfter, $_startAt); aggregate_command.idl ($_requestReshardingResumeToken,
    $_generateV2ResumeTokens); the OP_MSG spec (a `$`-field unknown to the receiver).
    """
    base = {"find": "c", "filter": {}}
    extra: list[tuple[str, str, Any]] = [
        ("tenant", "$tenant", ObjectId("65a0b4c3d2e1f00112233445")),
        ("request_resume_token", "$_requestResumeToken", True),
        ("resume_after", "$_resumeAfter", {"$recordId": bson.int64.Int64(1)}),
        ("start_at", "$_startAt", {"$recordId": bson.int64.Int64(1)}),
        ("generate_v2_resume_tokens", "$_generateV2ResumeTokens", True),
        ("query_options", "$queryOptions", {"$readPreference": {"mode": "secondary"}}),
        ("expect_prefix", "expectPrefix", True),
        ("audit_impersonation", "$audit", {"$impersonatedUser": {"user": "root", "db": "admin"}, "$impersonatedRoles": [{"role": "root", "db": "admin"}]}),
        ("client_metadata", "$client", {"driver": {"name": "x", "version": "1"}}),
        ("config_server_state", "$configServerState", {"opTime": {"ts": bson.timestamp.Timestamp(1, 1), "t": 1}}),
        ("oplog_query_data", "$oplogQueryData", 1),
        ("repl_data", "$replData", 1),
        ("config_time", "$configTime", bson.timestamp.Timestamp(1, 1)),
        ("topology_time", "$topologyTime", bson.timestamp.Timestamp(1, 1)),
        ("unknown_dollar", "$whatever", 1),
        ("dollar_db_lower_variant", "$DB", "other"),
    ]
    out = [(name, msg(t({**base, key: value}))) for name, key, value in extra]
    out.append(("reshard_resume_token_aggregate", msg(t({"aggregate": "c", "pipeline": [], "cursor": {}, "$_requestReshardingResumeToken": True}))))
    out.append(("tenant_on_insert", msg(t({"insert": "c", "documents": [{"a": 1}], "$tenant": ObjectId("65a0b4c3d2e1f00112233445")}))))
    out.append(("expect_prefix_with_prefixed_db", msg(t({"find": "c", "expectPrefix": True}, "65a0b4c3d2e1f00112233445_test"))))
    return out


def op_query() -> list[tuple[str, Builder]]:
    """Legacy OP_QUERY for anything but the handshake, and the removed legacy opcodes.

    Sources: MongoDB manual "Legacy Opcodes" (OP_QUERY, OP_INSERT, OP_UPDATE, OP_DELETE,
    OP_GET_MORE, OP_KILL_CURSORS removed in 5.1/6.0); mongod
    src/mongo/rpc/check_allowed_op_query_cmd.cpp (only hello/isMaster for new clients) and
    service_entry_point_common.cpp; `$queryOptions` folded into the command by
    src/mongo/rpc/legacy_request.cpp (up to 7.x).
    """
    q = lambda ns, doc, **kw: (lambda rid: f.op_query(rid, ns, doc, **kw))  # noqa: E731
    out: list[tuple[str, Builder]] = [
        ("find_cmd", q("test.$cmd", {"find": "c", "filter": {}})),
        ("insert_cmd", q("test.$cmd", {"insert": "c", "documents": [{"a": 1}]})),
        ("list_databases_admin", q("admin.$cmd", {"listDatabases": 1})),
        ("list_databases_test", q("test.$cmd", {"listDatabases": 1})),
        ("wrapped_find", q("test.$cmd", {"$query": {"find": "c"}, "$readPreference": {"mode": "primary"}})),
        ("query_options_hello", q("test.$cmd", {"isMaster": 1, "$queryOptions": {"$readPreference": {"mode": "secondary"}}})),
        ("buildinfo", q("test.$cmd", {"buildInfo": 1})),
        ("saslStart_external", q("$external.$cmd", {"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": Binary(b"\x05\x00\x00\x00\x00")})),
        ("authenticate", q("$external.$cmd", {"authenticate": 1, "mechanism": "MONGODB-X509"})),
        ("legacy_find_collection", q("test.c", {})),
        ("legacy_find_other", q("other.secrets", {})),
        ("legacy_find_system_users", q("admin.system.users", {})),
        ("exhaust_find_cmd", q("test.$cmd", {"find": "c"}, flags=1 << 6)),
        ("dropDatabase_other", q("other.$cmd", {"dropDatabase": 1})),
        ("eval_cmd", q("test.$cmd", {"eval": Code("1")})),
        ("get_more_legacy", lambda rid: f.op_get_more(rid, "other.secrets", 1234)),
    ]
    return out


def legacy_writes() -> list[tuple[str, Builder]]:
    """Removed fire-and-forget legacy messages (OP_INSERT, OP_UPDATE, OP_DELETE,
    OP_KILL_CURSORS): no reply can
    carry an error, so closing the connection is an acceptable refusal (mongod 6.0+ closes
    too); forwarding is not. Source: MongoDB manual "Legacy Opcodes"."""
    return [
        ("op_insert_other", lambda rid: f.op_insert(rid, "other.secrets", [{"a": 1}])),
        ("op_update_admin", lambda rid: f.op_update(rid, "admin.system.users", {}, {"$set": {"roles": []}})),
        ("op_delete_test", lambda rid: f.op_delete(rid, "test.c", {})),
        ("op_kill_cursors", lambda rid: f.op_kill_cursors(rid, [1234])),
    ]


def handshake() -> list[tuple[str, Builder]]:
    """hello/isMaster carrying authentication: refused outright (the lead's decision; the
    proxy logs in upstream itself and must not relay or drop a client's credentials silently).

    Sources: mongodb/specifications source/auth/auth.md (speculativeAuthenticate,
    saslSupportedMechs), source/mongodb-handshake/handshake.md; mongod
    src/mongo/db/repl/replication_info.cpp (CmdHello).
    """
    spec_auth = {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": Binary(b"n,,n=root,r=abc"), "db": "admin"}
    aws_auth = {"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": Binary(b"\x05\x00\x00\x00\x00"), "db": "$external"}
    docs: list[tuple[str, Any]] = [
        ("hello_speculative_auth", t({"hello": 1, "speculativeAuthenticate": spec_auth}, "admin")),
        ("hello_speculative_auth_aws", t({"hello": 1, "speculativeAuthenticate": aws_auth}, "admin")),
        ("ismaster_speculative_auth", t({"isMaster": 1, "speculativeAuthenticate": spec_auth}, "admin")),
        ("ismaster_lower_speculative_x509", t({"ismaster": 1, "speculativeAuthenticate": {"authenticate": 1, "mechanism": "MONGODB-X509", "db": "$external"}}, "admin")),
        ("hello_sasl_supported_mechs", t({"hello": 1, "saslSupportedMechs": "admin.root"}, "admin")),
        ("ismaster_sasl_supported_mechs_test", t({"isMaster": 1, "saslSupportedMechs": "test.app"})),
        ("hello_both", t({"hello": 1, "helloOk": True, "saslSupportedMechs": "admin.root", "speculativeAuthenticate": spec_auth}, "admin")),
    ]
    out = [(name, msg(doc)) for name, doc in docs]
    out += [
        ("op_query_ismaster_speculative_auth", lambda rid: f.op_query(rid, "admin.$cmd", {"isMaster": 1, "speculativeAuthenticate": spec_auth})),
        ("op_query_ismaster_sasl_supported_mechs", lambda rid: f.op_query(rid, "admin.$cmd", {"isMaster": 1, "saslSupportedMechs": "admin.root"})),
        ("op_query_wrapped_speculative_auth", lambda rid: f.op_query(rid, "admin.$cmd", {"$query": {"isMaster": 1, "speculativeAuthenticate": spec_auth}})),
    ]
    return out


def duplicate_keys() -> list[tuple[str, Builder]]:
    """Duplicate keys, top-level and nested: BSON allows them, parsers disagree on which one
    wins (first or last), so a proxy that judged one and forwards both has judged nothing.

    Sources: bsonspec.org (a document is a list of elements; uniqueness is not required by
    the format); MongoDB manual "Field Names" (duplicate field names are not supported);
    mongod's IDL parsers reject duplicate command fields ("duplicate field").
    """
    lookup_from = lambda *pairs: raw_doc(("$lookup", raw_doc(*pairs, ("localField", "a"), ("foreignField", "b"), ("as", "j"))))  # noqa: E731
    cases: list[tuple[str, Any]] = [
        ("db_test_then_other", raw_doc(("find", "secrets"), ("$db", "test"), ("$db", "other"))),
        ("db_other_then_test", raw_doc(("find", "secrets"), ("$db", "other"), ("$db", "test"))),
        ("command_name_twice", raw_doc(("find", "c"), ("find", "secrets"), ("$db", "test"))),
        ("rename_to_twice", raw_doc(("renameCollection", "test.c"), ("to", "test.d"), ("to", "other.d"), ("$db", "admin"))),
        ("rename_to_twice_reversed", raw_doc(("renameCollection", "test.c"), ("to", "other.d"), ("to", "test.d"), ("$db", "admin"))),
        ("pipeline_twice", raw_doc(("aggregate", "c"), ("pipeline", []), ("pipeline", [{"$out": other()}]), ("cursor", {}), ("$db", "test"))),
        ("lookup_from_twice", raw_doc(("aggregate", "c"), ("pipeline", [lookup_from(("from", "c2"), ("from", other()))]), ("cursor", {}), ("$db", "test"))),
        ("lookup_from_twice_reversed", raw_doc(("aggregate", "c"), ("pipeline", [lookup_from(("from", other()), ("from", "c2"))]), ("cursor", {}), ("$db", "test"))),
        ("out_db_twice", raw_doc(("aggregate", "c"), ("pipeline", [raw_doc(("$out", raw_doc(("db", "test"), ("coll", "x"), ("db", "other"))))]), ("cursor", {}), ("$db", "test"))),
        ("merge_into_twice", raw_doc(("aggregate", "c"), ("pipeline", [raw_doc(("$merge", raw_doc(("into", "x"), ("into", other()))))]), ("cursor", {}), ("$db", "test"))),
        ("stage_twice_in_one_document", raw_doc(("aggregate", "c"), ("pipeline", [raw_doc(("$match", {}), ("$out", other()))]), ("cursor", {}), ("$db", "test"))),
        ("explain_inner_db_twice", raw_doc(("explain", raw_doc(("find", "secrets"), ("$db", "test"), ("$db", "other"))), ("$db", "test"))),
        ("usersinfo_twice", raw_doc(("usersInfo", "app"), ("usersInfo", {"forAllDBs": True}), ("$db", "test"))),
        ("mapreduce_out_db_twice", raw_doc(("mapReduce", "c"), ("map", Code("function(){}")), ("reduce", Code("function(k,v){return 1}")), ("out", raw_doc(("replace", "x"), ("db", "test"), ("db", "other"))), ("$db", "test"))),
        ("bulkwrite_nsinfo_ns_twice", raw_doc(("bulkWrite", 1), ("ops", [{"insert": 0, "document": {}}]), ("nsInfo", [raw_doc(("ns", "test.c"), ("ns", "other.secrets"))]), ("$db", "admin"))),
        ("hello_speculative_auth_twice", raw_doc(("hello", 1), ("speculativeAuthenticate", {"saslStart": 1, "mechanism": "PLAIN", "payload": Binary(b""), "db": "admin"}), ("$db", "admin"))),
    ]
    return [(name, msg(doc)) for name, doc in cases]


def document_sequences() -> list[tuple[str, Builder]]:
    """OP_MSG kind-1 document sequences for fields that are not a command's documents list,
    and bodies the proxy cannot have read as one command.

    Sources: mongodb/specifications source/message/OP_MSG.md ("a document sequence ... is
    equivalent to an array field of the body"; exactly one kind-0 section; flag bits 0-15
    are required: a receiver must error on an unknown one); mongod
    src/mongo/rpc/op_msg.cpp (duplicate field between body and sequence; the documented
    sequence fields: insert `documents`, update `updates`, delete `deletes`, bulkWrite `ops`
    and `nsInfo`).
    """
    find = t({"find": "c"})
    out: list[tuple[str, Builder]] = [
        ("find_filter_as_sequence", msg(find, sequences=[("filter", [{"a": 1}])])),
        ("db_as_sequence", msg({"find": "c", "$db": "test"}, sequences=[("$db", [{"x": "other"}])])),
        ("pipeline_as_sequence_out_other", msg(t({"aggregate": "c", "cursor": {}}), sequences=[("pipeline", [{"$out": other()}])])),
        ("pipeline_as_sequence_lookup_other", msg(t({"aggregate": "c", "cursor": {}, "pipeline": []}), sequences=[("pipeline", [{"$lookup": {"from": other(), "pipeline": [], "as": "j"}}])])),
        ("nsinfo_sequence_other", msg(t({"bulkWrite": 1}, "admin"), sequences=[("ops", [{"insert": 0, "document": {}}]), ("nsInfo", [{"ns": "other.secrets"}])])),
        ("nsinfo_sequence_other_on_test", msg(t({"bulkWrite": 1}), sequences=[("ops", [{"insert": 0, "document": {}}]), ("nsInfo", [{"ns": "other.secrets"}])])),
        ("insert_documents_and_sequence", msg(t({"insert": "c", "documents": [{"a": 1}]}), sequences=[("documents", [{"a": 2}])])),
        ("insert_with_updates_sequence", msg(t({"insert": "c"}), sequences=[("updates", [{"q": {}, "u": {"$set": {"a": 1}}}])])),
        ("usersinfo_as_sequence", msg(t({"usersInfo": 1}), sequences=[("usersInfo", [{"forAllDBs": True}])])),
        ("roles_as_sequence", msg(t({"grantRolesToUser": "app"}), sequences=[("roles", [{"role": "root", "db": "admin"}])])),
        ("to_as_sequence", msg(t({"renameCollection": "test.c"}, "admin"), sequences=[("to", [{"db": "other"}])])),
        ("two_bodies_second_other", msg(find, extra_bodies=[t({"find": "secrets"}, "other")])),
        ("unknown_required_flag_bit", msg(find, flags=1 << 2)),
        ("unknown_required_flag_bit_15", msg(find, flags=1 << 15)),
        ("body_over_16_mib", msg(t({"insert": "c", "documents": [{"_id": "big", "blob": "x" * (16 * 1024 * 1024 + 64)}]}))),
    ]
    return out


def compression() -> list[tuple[str, Builder]]:
    """OP_COMPRESSED framing the proxy cannot have decompressed into what the server would
    read: unknown compressor, a declared size that lies, nested compression, an original
    opcode that is not a request. The inner message is an allowed `find` in `test`: what is
    wrong is only the framing, so forwarding any of these forwards something unjudged.

    Sources: mongodb/specifications source/compression/OP_COMPRESSED.md (compressor ids 0-3;
    "uncompressedSize: size of the deflated originalOpcode"; OP_COMPRESSED cannot wrap
    itself); mongod src/mongo/transport/message_compressor_manager.cpp (decompressMessage
    checks the id and the size).
    """
    inner = lambda rid: f.op_msg(rid, t({"find": "c", "filter": {}}))  # noqa: E731

    def rewrap(rid: int, *, op: int | None = None, size_delta: int = 0, compressor_id: int | None = None, data: bytes | None = None, tail: bytes = b"") -> bytes:
        plain = inner(rid)
        original = plain[16:]
        body = data if data is not None else f.zlib_compress(original)
        payload = f.struct_pack_compressed(op if op is not None else f.OP_MSG, len(original) + size_delta, 2 if compressor_id is None else compressor_id) + body + tail
        return f.frame(f.OP_COMPRESSED, rid, payload)

    return [
        ("unknown_compressor_id", lambda rid: rewrap(rid, compressor_id=9, data=inner(rid)[16:])),
        ("size_declared_larger", lambda rid: rewrap(rid, size_delta=+1)),
        ("size_declared_smaller", lambda rid: rewrap(rid, size_delta=-1)),
        ("size_declared_huge", lambda rid: rewrap(rid, size_delta=1 << 30)),
        ("size_negative", lambda rid: rewrap(rid, size_delta=-(1 << 31) + 1)),
        ("trailing_bytes_after_zlib", lambda rid: rewrap(rid, tail=b"\x00garbage")),
        ("noop_size_lie", lambda rid: rewrap(rid, compressor_id=0, data=inner(rid)[16:], size_delta=+4)),
        ("nested_compressed", lambda rid: f.compress(f.compress(inner(rid), "zlib"), "zlib")),
        ("original_opcode_compressed", lambda rid: rewrap(rid, op=f.OP_COMPRESSED)),
        ("original_opcode_reply", lambda rid: rewrap(rid, op=f.OP_REPLY)),
        ("original_opcode_query_body_msg", lambda rid: rewrap(rid, op=f.OP_QUERY)),
        ("snappy_corrupt", lambda rid: rewrap(rid, compressor_id=1, data=b"\xff\xff\xff\xff\x0f" + inner(rid)[16:])),
    ]


def unknown_commands() -> list[tuple[str, Builder]]:
    """Command names no server knows (case variants of real ones, typos, an empty name):
    a command missing from the command table is refused, never forwarded on the chance that
    the server rejects it. Real aliases (`findandmodify`, `mapreduce`, `ismaster`) are
    table rows, not case folding.

    Sources: MongoDB 8.0 manual "Database Commands" (the command list); mongod
    src/mongo/db/commands.cpp (CommandHelpers::findCommand: exact, case-sensitive lookup).
    """
    docs: list[tuple[str, Any]] = [
        ("find_upper", t({"FIND": "c"})),
        ("find_capitalised", t({"Find": "c"})),
        ("dropdatabase_lower", t({"dropdatabase": 1})),
        ("listdatabases_lower", t({"listdatabases": 1})),
        ("trailing_space", t({"find ": "c"})),
        ("empty_name", t({"": 1})),
        ("made_up", t({"frobnicate": 1})),
        ("db_first", {"$db": "test", "find": "c"}),
        ("generic_argument_first", {"maxTimeMS": 100, "find": "c", "$db": "test"}),
        ("lsid_first_then_killAllSessions", {"lsid": {"id": uuid4()}, "killAllSessions": [], "$db": "test"}),
    ]
    return [(name, msg(doc)) for name, doc in docs]


FAMILIES: dict[str, Callable[[], list[tuple[str, Builder]]]] = {
    "xdb": cross_database,
    "admin": admin_commands,
    "shared": shared_principal,
    "auth": auth_and_legacy,
    "names": bad_names,
    "fields": unknown_fields,
    "opquery": op_query,
    "legacy": legacy_writes,
    "handshake": handshake,
    "dupkeys": duplicate_keys,
    "sequences": document_sequences,
    "compression": compression,
    "unknown": unknown_commands,
}

COMPRESSOR_CYCLE = ("snappy", "zlib", "zstd")


def must_deny() -> list[Case]:
    """Every must-deny case: the base messages, their OP_COMPRESSED twins and, for OP_MSG,
    their moreToCome twins."""
    cases: list[Case] = []
    for family, make in FAMILIES.items():
        seen: set[str] = set()
        for position, (name, build) in enumerate(make()):
            if name in seen:
                raise ValueError(f"duplicate case {family}/{name}")
            seen.add(name)
            case_id = f"{family}/{name}"
            sample = build(1)
            op = int.from_bytes(sample[12:16], "little")
            # Legacy fire-and-forget writes and broken compression framing: mongod closes the
            # connection on these too, so a close is an acceptable refusal.
            closing_ok = family in ("legacy", "compression")
            if op == f.OP_COMPRESSED:
                declared = int.from_bytes(sample[16:20], "little", signed=True)
                reply_op = f.OP_REPLY if declared == f.OP_QUERY else f.OP_MSG
                cases.append(Case(case_id, family, build, reply_op, closing_ok))
                continue  # already compressed: no twins
            if op == f.OP_MSG:
                flags = f.op_msg_flags(sample)
                reply_op = 0 if flags & f.MORE_TO_COME else f.OP_MSG
            elif op in (f.OP_QUERY, f.OP_GET_MORE):
                reply_op = f.OP_REPLY
            else:
                reply_op = 0  # fire-and-forget legacy opcodes: no reply
            cases.append(Case(case_id, family, build, reply_op, closing_ok))
            # By position in the family: appending a case never renames another's twin.
            compressor = COMPRESSOR_CYCLE[position % len(COMPRESSOR_CYCLE)]
            cases.append(
                Case(f"{case_id}~{compressor}", family, (lambda b, c: lambda rid: f.compress(b(rid), c))(build, compressor), reply_op, closing_ok)
            )
            if op == f.OP_MSG and reply_op:
                more = (lambda b: lambda rid: f.with_flags(b(rid), f.MORE_TO_COME))(build)
                cases.append(Case(f"{case_id}~more", family, more, 0, closing_ok))
    return cases


def near_misses() -> list[tuple[str, Builder]]:
    """Must-allow: legitimate messages that look like must-deny ones (same fields, but every
    namespace is in `test`; real aliases; every generic argument). A proxy that refuses them
    over-blocks. The stand-in holds them back (records, does not run), so only "did the proxy
    forward it" is measured.

    Sources: MongoDB 8.0 manual ($out/$merge/$lookup `{db, coll}` forms, renameCollection
    "must be run against the admin database", bulkWrite "must be run against the admin
    database" with `nsInfo`, explain, findAndModify/mapReduce aliases, Naming Restrictions
    (collection names may contain dots)); mongod src/mongo/idl/generic_argument.idl
    (generic_args_api_v1).
    """
    lookup_test = {"$lookup": {"from": {"db": ALLOWED_DB, "coll": "c2"}, "localField": "_id", "foreignField": "_id", "as": "j"}}
    agg = lambda pipeline: t({"aggregate": "c", "pipeline": pipeline, "cursor": {}})  # noqa: E731
    docs: list[tuple[str, Any]] = [
        ("out_db_test", agg([{"$out": {"db": ALLOWED_DB, "coll": "copy"}}])),
        ("merge_into_db_test", agg([{"$merge": {"into": {"db": ALLOWED_DB, "coll": "copy"}}}])),
        ("lookup_from_db_test", agg([lookup_test])),
        ("lookup_dotted_collection", agg([{"$lookup": {"from": "other.secrets", "localField": "_id", "foreignField": "_id", "as": "j"}}])),
        ("unionwith_dotted_collection", agg([{"$unionWith": {"coll": "admin.system.users", "pipeline": []}}])),
        ("rename_within_test_on_admin", t({"renameCollection": "test.a", "to": "test.b"}, "admin")),
        ("bulkwrite_nsinfo_test_on_admin", t({"bulkWrite": 1, "ops": [{"insert": 0, "document": {"a": 1}}], "nsInfo": [{"ns": "test.c"}]}, "admin")),
        ("find_dotted_collection", t({"find": "other.secrets", "filter": {}})),
        ("find_collection_named_admin", t({"find": "admin", "filter": {}})),
        ("explain_find", t({"explain": {"find": "c", "filter": {}}, "verbosity": "queryPlanner"})),
        ("explain_inner_db_same", t({"explain": {"find": "c", "$db": ALLOWED_DB}})),
        ("explain_aggregate_out_test", t({"explain": {"aggregate": "c", "pipeline": [{"$out": "copy"}], "cursor": {}}})),
        ("usersinfo_this_db", t({"usersInfo": "app"})),
        ("usersinfo_doc_this_db", t({"usersInfo": {"user": "app", "db": ALLOWED_DB}})),
        ("findandmodify_lowercase_alias", t({"findandmodify": "c", "query": {"_id": 1}, "update": {"$set": {"a": 1}}})),
        ("mapreduce_inline", t({"mapReduce": "c", "map": Code("function(){emit(1,1)}"), "reduce": Code("function(k,v){return 1}"), "out": {"inline": 1}})),
        ("mapreduce_out_db_test", t({"mapReduce": "c", "map": Code("function(){emit(1,1)}"), "reduce": Code("function(k,v){return 1}"), "out": {"replace": "mr", "db": ALLOWED_DB}})),
        ("create_view_lookup_test", t({"create": "v", "viewOn": "c", "pipeline": [lookup_test]})),
        ("aggregate_documents_collectionless", t({"aggregate": 1, "pipeline": [{"$documents": [{"a": 1}]}], "cursor": {}})),
        ("coll_stats", t({"collStats": "c"})),
        ("db_stats", t({"dbStats": 1, "scale": 1024})),
        (
            "find_every_generic_argument",
            t(
                {
                    "find": "c",
                    "filter": {},
                    "maxTimeMS": 1000,
                    "readConcern": {"level": "local"},
                    "lsid": {"id": uuid4()},
                    "comment": "near miss",
                    "$readPreference": {"mode": "primaryPreferred"},
                    "$clusterTime": {"clusterTime": bson.timestamp.Timestamp(1, 1), "signature": {"hash": Binary(b"\x00" * 20), "keyId": bson.int64.Int64(0)}},
                    "apiVersion": "1",
                    "apiStrict": False,
                    "apiDeprecationErrors": False,
                }
            ),
        ),
        ("insert_write_concern", t({"insert": "c", "documents": [{"a": 1}], "writeConcern": {"w": "majority", "wtimeout": 1000}, "ordered": True})),
    ]
    out = [(name, msg(doc)) for name, doc in docs]
    out.append(("insert_documents_sequence", msg(t({"insert": "c"}), sequences=[("documents", [{"a": 1}, {"a": 2}])])))
    out.append(("update_updates_sequence", msg(t({"update": "c"}), sequences=[("updates", [{"q": {}, "u": {"$set": {"a": 1}}}])])))
    out.append(("delete_deletes_sequence", msg(t({"delete": "c"}), sequences=[("deletes", [{"q": {}, "limit": 0}])])))
    out.append(("insert_more_to_come", msg(t({"insert": "c", "documents": [{"a": 1}], "writeConcern": {"w": 0}}), flags=f.MORE_TO_COME)))
    return out


def must_allow() -> list[Case]:
    """The near misses as cases of family `allow` (no twins)."""
    cases = []
    for name, build in near_misses():
        flags = f.op_msg_flags(build(1))
        cases.append(Case(f"allow/{name}", "allow", build, 0 if flags & f.MORE_TO_COME else f.OP_MSG))
    return cases
