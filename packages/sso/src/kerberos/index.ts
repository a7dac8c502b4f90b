/**
 * A Kerberos client in TypeScript on node:crypto, for constrained delegation: the connector's
 * service account gets, for a signed-in user, a service ticket to the backend's SPN
 * (S4U2Self + S4U2Proxy, MS-SFU) and sends it as `Authorization: Negotiate …`.
 *
 * - `der.ts` — the ASN.1 DER subset Kerberos and SPNEGO use (our own; see its doc for why)
 * - `crypto.ts` — RFC 3961/3962 AES etypes 17/18 and the HMAC-MD5 checksum of PA-FOR-USER
 * - `messages.ts` — AS/TGS/AP messages, PA-FOR-USER, PA-PAC-OPTIONS, KRB-ERROR
 * - `keytab.ts`, `krb5-conf.ts` — the MIT keytab format and krb5.conf's realm/KDC entries
 * - `transport.ts` — TCP to each KDC, UDP when TCP cannot connect
 * - `spnego.ts` — GSS-API framing, the 0x8003 checksum, SPNEGO NegTokenInit
 * - `delegator.ts` — `KerberosDelegator`: login, ticket caches, `authorization()`
 */
export { KerberosDelegator, type KerberosDelegatorOptions } from './delegator.js';
