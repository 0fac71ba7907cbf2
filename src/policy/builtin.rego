# libdocauth built-in database access policy: Teleport's RBAC rules for databases.
#
# The library's matchers (Rust, compiled when the roles are loaded) evaluate every role the
# identity holds against the request, as Teleport's RoleSet.checkAccess matchers do, and
# fill input.rbac with:
#
#   deny           one entry per matching deny rule: a role whose deny.db_labels match the
#                  database ("db_labels"), whose deny.db_users match the db user
#                  ("db_users"), or whose deny.db_names match a database name the request
#                  touches ("db_names"); deny db_users/db_names are greedy and apply
#                  whatever that role's deny labels say;
#   connect_roles  roles whose allow.db_labels AND allow.db_users both match;
#   allow          for each database name the request touches, the roles whose
#                  allow.db_labels, allow.db_users AND allow.db_names all match
#                  (one single role must match all three: never combined across roles);
#   unknown_roles  role names the identity holds that are not loaded;
#   errors         roles that could not be evaluated for this identity.
#
# This module combines them: deny first, then allow, default deny. Operator modules never
# run in this engine: they are evaluated separately and can only add deny reasons
# (see docs/policy.md).
package docauth.builtin

import rego.v1

default allow := false

allow if {
	count(input.rbac.deny) == 0
	count(input.rbac.unknown_roles) == 0
	count(input.rbac.errors) == 0
	count(input.rbac.connect_roles) > 0
	not name_missing
}

# A database name the request touches that no single role allows.
name_missing if {
	some n in input.request.databases
	count(input.rbac.allow[n]) == 0
}

deny_reasons contains msg if {
	some r in input.rbac.unknown_roles
	msg := sprintf("identity %q holds role %q, which is not loaded", [input.identity.user, r])
}

deny_reasons contains msg if {
	some msg in input.rbac.errors
}

deny_reasons contains msg if {
	some d in input.rbac.deny
	d.rule == "db_labels"
	msg := sprintf("role %q: deny.db_labels match database %q", [d.role, input.database.name])
}

deny_reasons contains msg if {
	some d in input.rbac.deny
	d.rule == "db_users"
	msg := sprintf("role %q: deny.db_users match db user %q", [d.role, d.value])
}

deny_reasons contains msg if {
	some d in input.rbac.deny
	d.rule == "db_names"
	msg := sprintf("role %q: deny.db_names match database name %q", [d.role, d.value])
}

deny_reasons contains msg if {
	count(deny_entries) == 0
	count(input.rbac.connect_roles) == 0
	msg := sprintf("no role allows db user %q on database %q (allow.db_labels and allow.db_users of one role)", [input.request.db_user, input.database.name])
}

deny_reasons contains msg if {
	count(deny_entries) == 0
	count(input.rbac.connect_roles) > 0
	some n in input.request.databases
	count(input.rbac.allow[n]) == 0
	msg := sprintf("no single role allows db user %q on database %q with database name %q (allow.db_names of roles %v)", [input.request.db_user, input.database.name, n, input.rbac.connect_roles])
}

deny_entries := array.concat(array.concat(input.rbac.deny, input.rbac.unknown_roles), input.rbac.errors)
