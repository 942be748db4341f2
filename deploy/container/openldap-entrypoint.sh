#!/bin/sh
# First start: cn=config and the base entries under /var/lib/openldap for LDAP_BASE_DN
# (default dc=example,dc=org), its admin cn=admin,BASE with LDAP_ADMIN_PASSWORD, the overlays
# scimbridge's openldap profile relies on, and a default password policy. Then runs slapd.
set -eu
base="${LDAP_BASE_DN:-dc=example,dc=org}"
home=/var/lib/openldap
if [ ! -d "$home/slapd.d/cn=config" ]; then
    if [ -z "${LDAP_ADMIN_PASSWORD:-}" ]; then
        echo "openldap-entrypoint: set LDAP_ADMIN_PASSWORD" >&2
        exit 1
    fi
    mkdir -p "$home/slapd.d" "$home/data"
    hashed="$(slappasswd -s "$LDAP_ADMIN_PASSWORD")"
    first_dc="$(echo "$base" | sed 's/^dc=\([^,]*\).*/\1/')"
    cat > "$home/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $home/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: ppolicy
olcModuleLoad: argon2

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
include: file:///etc/ldap/schema/nis.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: unlimited

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $base
olcRootDN: cn=admin,$base
olcRootPW: $hashed
olcDbDirectory: $home/data
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: cn eq
olcDbIndex: mail eq
olcDbIndex: member eq
olcDbIndex: memberOf eq
olcSizeLimit: unlimited
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by users read by * none

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefint: TRUE

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: member
olcRefintNothing: cn=nobody

dn: olcOverlay={2}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {2}ppolicy
olcPPolicyDefault: cn=default,ou=policies,$base
LDIF
    cat > "$home/base.ldif" <<LDIF
dn: $base
objectClass: dcObject
objectClass: organization
dc: $first_dc
o: $first_dc

dn: ou=policies,$base
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,$base
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
LDIF
    slapadd -n0 -F "$home/slapd.d" -l "$home/config.ldif"
    slapadd -n1 -F "$home/slapd.d" -l "$home/base.ldif"
    rm -f "$home/config.ldif" "$home/base.ldif"
fi
exec slapd -F "$home/slapd.d" -h "ldap://0.0.0.0:1389/" -d "${LDAP_DEBUG_LEVEL:-0}"
