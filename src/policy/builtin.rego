# libdocauth built-in database access policy: Teleport's RBAC rules for databases.
#
# The library's matchers (Rust, compiled when the roles are loaded) fill input.rbac with,
# for every role the identity holds, whether its allow/deny db_labels match the database,
# whether its db_users match the db user (or the IAM alias of it), and which of the
# request's database names its db_names match. This module combines those facts the way
# Teleport's RoleSet.checkAccess does:
#
#   1. deny first: a deny rule whose db_labels match the database denies it; deny db_users
#      and db_names are greedy and apply whatever that role's deny labels say;
#   2. then allow: one single role must match the labels, the db user and the db name
#      together (per database name the request touches);
#   3. default deny.
#
# Operator modules never run in this engine: they are evaluated separately and can only
# add deny reasons (see docs/policy.md).
package docauth.builtin

import rego.v1

default allow := false

deny_reasons contains msg if {
	some r in input.rbac.unknown_roles
	msg := sprintf("identity %q holds role %q, which is not loaded", [input.identity.user, r])
}

deny_reasons contains msg if {
	some msg in input.rbac.errors
}

deny_reasons contains msg if {
	some r in input.rbac.roles
	r.deny.labels
	msg := sprintf("role %q: deny.db_labels match database %q", [r.name, input.database.name])
}

deny_reasons contains msg if {
	some r in input.rbac.roles
	r.deny.db_user
	msg := sprintf("role %q: deny.db_users match db user %q", [r.name, input.request.db_user])
}

deny_reasons contains msg if {
	some r in input.rbac.roles
	some n in r.deny.db_names
	msg := sprintf("role %q: deny.db_names match database name %q", [r.name, n])
}

deny_roles contains r.name if {
	some r in input.rbac.roles
	r.deny.labels
}

deny_roles contains r.name if {
	some r in input.rbac.roles
	r.deny.db_user
}

deny_roles contains r.name if {
	some r in input.rbac.roles
	count(r.deny.db_names) > 0
}

# Roles whose allow side matches the database labels and the db user.
connect_roles contains r.name if {
	some r in input.rbac.roles
	r.allow.labels
	r.allow.db_user
}

name_allowed(n) if {
	some r in input.rbac.roles
	r.allow.labels
	r.allow.db_user
	n in r.allow.db_names
}

missing_names contains n if {
	some n in input.request.databases
	not name_allowed(n)
}

# The allowing roles: connect roles that also allow a database name the request touches
# (all connect roles for a connection command, which touches no database name).
allow_roles contains r.name if {
	some r in input.rbac.roles
	r.name in connect_roles
	count(input.request.databases) == 0
}

allow_roles contains r.name if {
	some r in input.rbac.roles
	r.name in connect_roles
	count(r.allow.db_names) > 0
}

allow if {
	count(deny_reasons) == 0
	count(connect_roles) > 0
	count(missing_names) == 0
}

decision := {
	"allow": allow,
	"deny_reasons": deny_reasons,
	"deny_roles": deny_roles,
	"allow_roles": allow_roles,
	"connect_roles": connect_roles,
	"missing_names": missing_names,
}
