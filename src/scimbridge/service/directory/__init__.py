"""Users and groups: the lifecycle rules, SCIM provisioning, roles, reads, audit."""
