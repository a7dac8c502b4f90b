import { TokenError, type StateStore } from '@appproxy/config';
import { PkiError, type ConnectorCA } from '@appproxy/pki';
import type { Logger } from '@appproxy/telemetry';
import {
  REGISTRATION_PATH,
  type RegistrationRequest,
  type RegistrationResult,
} from '@appproxy/tunnel';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuditSink } from './audit.js';

const MAX_BODY = 64 * 1024;

const TOKEN_STATUS: Record<TokenError['code'], number> = {
  APPPROXY_TOKEN_INVALID: 401,
  APPPROXY_TOKEN_EXPIRED: 401,
  APPPROXY_TOKEN_USED: 401,
  APPPROXY_TOKEN_REVOKED: 401,
};

/**
 * Registration on the tunnel port: a one-time token and a CSR in, a connector certificate
 * signed by the relay's CA out. The connector's key never leaves the connector.
 */
export function registrationHandler(deps: {
  ca: ConnectorCA;
  store: StateStore;
  log: Logger;
  knownGroups: () => ReadonlySet<string>;
  /** Lifetime of the certificate issued (`relay.connectorCertValidity`). */
  certValidityMs: number;
  audit?: AuditSink;
}) {
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const refuse = (res: ServerResponse, status: number, code: string, message: string) =>
    reply(res, status, { error: { code, message } });

  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'POST' || req.url !== REGISTRATION_PATH) {
      return refuse(res, 404, 'APPPROXY_NOT_FOUND', 'unknown registration endpoint');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        refuse(res, 413, 'APPPROXY_REGISTRATION_TOO_LARGE', 'registration request too large');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      void (async () => {
        let body: RegistrationRequest;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RegistrationRequest;
          if (
            typeof body.tokenId !== 'string' ||
            typeof body.secret !== 'string' ||
            typeof body.csr !== 'string'
          )
            throw new Error('fields');
        } catch {
          return refuse(
            res,
            400,
            'APPPROXY_REGISTRATION_MALFORMED',
            'expected JSON with tokenId, secret and csr',
          );
        }
        const remote = req.socket.remoteAddress;
        try {
          // Checked, not spent: a refused CSR or a failure below leaves the token usable.
          const { group } = await deps.store.checkRegistrationToken(body.tokenId, body.secret);
          if (!deps.knownGroups().has(group)) {
            return refuse(
              res,
              409,
              'APPPROXY_GROUP_UNKNOWN',
              `connector group ${group} is no longer configured`,
            );
          }
          const connectorId = randomUUID();
          const issued = await deps.ca.issueFromCsr(body.csr, {
            commonName: connectorId,
            validityMs: deps.certValidityMs,
          });
          // Spent and recorded together; a token raced away in between leaves no connector.
          await deps.store.redeemRegistrationToken(body.tokenId, body.secret, {
            connector: {
              id: connectorId,
              group,
              certSerial: issued.serialNumber,
              certFingerprint: issued.fingerprint,
              certNotAfter: issued.notAfter,
              createdAt: new Date(),
              hostname: String(body.hostname ?? '').slice(0, 255),
              version: String(body.version ?? '').slice(0, 64),
              capabilities: [],
              tunnels: 0,
              inFlight: 0,
            },
          });
          deps.log.info('connector registered', {
            connectorId,
            group,
            hostname: body.hostname,
            remote,
            tokenId: body.tokenId,
          });
          deps.audit?.record({
            type: 'connector.registered',
            actor: `connector:${connectorId}`,
            connector: connectorId,
            group,
            ...(remote !== undefined && { clientAddress: remote }),
            detail: {
              tokenId: body.tokenId,
              hostname: String(body.hostname ?? '').slice(0, 255) || null,
            },
          });
          const result: RegistrationResult = {
            connectorId,
            group,
            certificate: issued.certPem,
            caCertificate: deps.ca.certPem,
          };
          reply(res, 200, result);
        } catch (err) {
          if (err instanceof TokenError) {
            deps.log.warn('registration refused', {
              code: err.code,
              tokenId: body.tokenId,
              remote,
            });
            return refuse(res, TOKEN_STATUS[err.code], err.code, err.message);
          }
          if (err instanceof PkiError) {
            deps.log.warn('registration refused', { code: err.code, remote });
            return refuse(res, 400, err.code, err.message);
          }
          deps.log.error('registration failed', { error: err, remote });
          refuse(res, 500, 'APPPROXY_INTERNAL_ERROR', 'registration failed');
        }
      })();
    });
  };
}
