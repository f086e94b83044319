// oidc-provider configured for keel (copied into the throwaway directory by run.sh).
//
// Environment:
//   PORT            port to listen on (127.0.0.1 only)
//   ADAPTER         "memory" (oidc-provider's default in-memory adapter) or "persistent"
//                   (the append-only JSON journal in json-journal-adapter.mjs)
//   DATA_DIR        where the signing key (jwks.json) and the journal live
//   KEEL_CLIENT_SECRET, KEEL_CLIENT2_SECRET   secrets of the two confidential clients
//
// Besides the provider itself, this process serves three keel helpers:
//   GET /keel/health                 {"boot_id": <uuid per process>, "adapter": ...}
//   GET /keel/authorize?...          runs the real authorization flow (/auth -> interaction ->
//                                    /auth/:uid) with a cookie jar and answers with the final
//                                    redirect carrying the code, i.e. an auto-approving front
//                                    for keel's authorization_code user-token method
//   GET /keel/interaction/:uid       the interaction endpoint: logs in login_hint (default
//                                    "alice") and grants what the client asked for
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';

import JournalAdapter, { openJournal } from './json-journal-adapter.mjs';

const PORT = Number(process.env.PORT);
const MODE = process.env.ADAPTER || 'memory';
const DATA_DIR = process.env.DATA_DIR;
const ISSUER = `http://127.0.0.1:${PORT}`;
const RESOURCE = 'urn:keel:api';
const BOOT_ID = crypto.randomUUID();

if (!PORT || !DATA_DIR || !process.env.KEEL_CLIENT_SECRET || !process.env.KEEL_CLIENT2_SECRET) {
  console.error('server.mjs: PORT, DATA_DIR, KEEL_CLIENT_SECRET and KEEL_CLIENT2_SECRET are required');
  process.exit(2);
}

// The signing key: generated once per data directory and reused on every start, so the JWKS
// (and every kid) is the same across restarts in both variants.
function signingKeys() {
  const file = path.join(DATA_DIR, 'jwks.json');
  if (!fs.existsSync(file)) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ keys: [jwk] }), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const redirectUri = 'http://127.0.0.1/callback';
const clientDefaults = {
  grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [redirectUri],
  token_endpoint_auth_method: 'client_secret_basic',
};

const configuration = {
  clients: [
    { ...clientDefaults, client_id: 'keel-ci', client_secret: process.env.KEEL_CLIENT_SECRET },
    { ...clientDefaults, client_id: 'keel-ci-2', client_secret: process.env.KEEL_CLIENT2_SECRET },
  ],
  jwks: signingKeys(),
  cookies: { keys: [crypto.createHash('sha256').update(`cookies:${process.env.KEEL_CLIENT_SECRET}`).digest('hex')] },
  scopes: ['openid', 'offline_access', 'read'],
  claims: { openid: ['sub'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  interactions: {
    url(ctx, interaction) { return `/keel/interaction/${interaction.uid}`; },
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Confidential clients may introspect any token; a public client only its own.
      async allowedPolicy(ctx, client, token) {
        return client.clientAuthMethod !== 'none' || token.clientId === client.clientId;
      },
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource() { return RESOURCE; },
      useGrantedResource() { return true; },
      getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: 'read',
          audience: RESOURCE,
          accessTokenTTL: 3600,
          // Opaque, not 'jwt': oidc-provider does not store JWT access tokens, so its own
          // introspection answers {"active":false} for them and revocation cannot end them.
          // keel judges liveness by introspection; see RESULTS.md.
          accessTokenFormat: process.env.ACCESS_TOKEN_FORMAT || 'opaque',
        };
      },
    },
  },
  // Refresh tokens for every client allowed the refresh_token grant, not bound to the browser
  // session (as with offline_access), rotated on every use (RFC 9700 §4.14.2).
  async issueRefreshToken(ctx, client) { return client.grantTypeAllowed('refresh_token'); },
  async expiresWithSession() { return false; },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 3600,
    ClientCredentials: 3600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 86400,
    Grant: 14 * 86400,
    RefreshToken: 14 * 86400,
    IdToken: 3600,
  },
};

if (MODE === 'persistent') {
  openJournal(path.join(DATA_DIR, 'journal.jsonl'));
  configuration.adapter = JournalAdapter;
} else if (MODE !== 'memory') {
  console.error(`server.mjs: unknown ADAPTER ${MODE}`);
  process.exit(2);
}

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const callback = provider.callback();

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: params.login_hint || 'alice' } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    send(res, 500, { error: 'server_error', error_description: `unexpected prompt ${prompt.name}` });
    return;
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// Follows the provider's redirects (with a cookie jar) from /auth until it redirects to the
// client's redirect_uri, and hands that redirect to the caller.
async function authorizeFront(req, res, url) {
  const target = url.searchParams.get('redirect_uri') || '';
  let next = new URL(`/auth${url.search}`, ISSUER);
  const jar = new Map();
  for (let hop = 0; hop < 12; hop += 1) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(next, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const sc of r.headers.getSetCookie()) {
      const [pair] = sc.split(';');
      const i = pair.indexOf('=');
      const k = pair.slice(0, i).trim();
      const v = pair.slice(i + 1).trim();
      if (v === '' || /expires=Thu, 01 Jan 1970/i.test(sc)) jar.delete(k); else jar.set(k, v);
    }
    const loc = r.headers.get('location');
    if (!loc || r.status < 300 || r.status >= 400) {
      const text = await r.text();
      send(res, 502, { error: 'keel_front', error_description: `hop ${hop}: ${r.status} without redirect: ${text.slice(0, 300)}` });
      return;
    }
    const abs = new URL(loc, next);
    if (target && abs.href.startsWith(target)) {
      res.writeHead(303, { location: abs.href, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    next = abs;
  }
  send(res, 502, { error: 'keel_front', error_description: 'too many redirects' });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, ISSUER);
  const p = url.pathname;
  const handle = async () => {
    if (p === '/keel/health') {
      send(res, 200, { boot_id: BOOT_ID, adapter: MODE, pid: process.pid });
    } else if (p === '/keel/authorize' && req.method === 'GET') {
      await authorizeFront(req, res, url);
    } else if (p.startsWith('/keel/interaction/')) {
      await interaction(req, res);
    } else {
      callback(req, res);
    }
  };
  handle().catch((err) => {
    console.error(err);
    if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: String(err.message || err) });
    else res.end();
  });
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`oidc-provider (${MODE} adapter) at ${ISSUER}, pid ${process.pid}, boot ${BOOT_ID}`);
});
process.on('SIGTERM', () => { server.close(); process.exit(0); });
