// An independent relying party: panva's openid-client v6 (an OpenID-certified RP library)
// runs discovery, the code flow with PKCE S256, state and nonce, ID token validation,
// userinfo, refresh with rotation, introspection and revocation against our IdP.
//
// Driven by tests/idp/test_independent_rp.py over stdin/stdout, one JSON object a line:
//   argv[2]      {"issuer": URL, "clients": {"A": {client_id, client_secret, redirect_uri,
//                 id_token_alg}, "B": {...}}}
//   stdout  →    {"step": NAME, "authorize": URL}   the test plays the browser (sign-in, consent)
//   stdin   ←    {"callback": URL}                  where the IdP finally redirected the browser
//   stdout  →    {"result": {...}}                  what the library saw; the test asserts on it
// Every protocol message is built, sent and validated by the library; anything it rejects
// throws, and the script exits 1 with the library's error (code, cause) on stderr.

import { createInterface } from 'node:readline';
import * as client from 'openid-client';

const config = JSON.parse(process.argv[2]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function send(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

async function receive() {
  const { value, done } = await lines.next();
  if (done) throw new Error('the test closed stdin');
  return JSON.parse(value);
}

// algorithm 'oidc': /.well-known/openid-configuration; 'oauth2': RFC 8414's
// /.well-known/oauth-authorization-server. Either way the library requires the metadata's
// issuer to be exactly the one it was given.
async function configure(name, algorithm = 'oidc') {
  const c = config.clients[name];
  return client.discovery(
    new URL(config.issuer),
    c.client_id,
    // The library refuses an ID token signed with another algorithm than the client's.
    { redirect_uris: [c.redirect_uri], id_token_signed_response_alg: c.id_token_alg },
    client.ClientSecretBasic(c.client_secret),
    // Plain http is accepted only because the IdP under test listens on loopback
    // (127.0.0.1) in the test's own process; never allowInsecureRequests against anything else.
    { algorithm, execute: [client.allowInsecureRequests] },
  );
}

// Authorization code flow: the library makes the request (PKCE S256, state, nonce), the test
// walks the browser through sign-in and consent, the library checks the response (state, RFC
// 9207 iss), redeems the code and validates the ID token (signature via jwks_uri, iss, aud,
// exp, iat, nonce).
async function signIn(rp, name, step, extra = {}) {
  const c = config.clients[name];
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(rp, {
    redirect_uri: c.redirect_uri,
    scope: 'openid offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  send({ step, authorize: url.href });
  const { callback } = await receive();
  const tokens = await client.authorizationCodeGrant(rp, new URL(callback), {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  return { tokens, claims: tokens.claims(), nonce };
}

// An expected refusal: the library's own error class and the OAuth error it parsed.
async function refused(promise) {
  try {
    await promise;
  } catch (err) {
    const out = { name: err.name, code: err.code ?? null, error: err.error ?? null };
    if (err instanceof client.WWWAuthenticateChallengeError) {
      out.status = err.status;
      out.error = err.cause?.[0]?.parameters?.error ?? null;
    } else if (err instanceof client.ResponseBodyError) {
      out.status = err.status;
    }
    return out;
  }
  return null; // not refused
}

const introspect = async (rp, token, hint) =>
  client.tokenIntrospection(rp, token, hint ? { token_type_hint: hint } : {});

async function main() {
  const A = await configure('A');
  const B = await configure('B');
  const result = {
    metadata: A.serverMetadata(),
    oauth_metadata: (await configure('A', 'oauth2')).serverMetadata(),
  };

  // 1. Code flow, client A (sector 127.0.0.1), demo citizen 1.
  const a1 = await signIn(A, 'A', 'A-first');
  const sub = a1.claims.sub;
  result.a1 = {
    claims: a1.claims,
    nonce: a1.nonce,
    token_type: a1.tokens.token_type,
    scope: a1.tokens.scope,
    has_refresh_token: typeof a1.tokens.refresh_token === 'string',
    expires_in: a1.tokens.expiresIn(),
    // The library compares userinfo's sub with the ID token's (OIDC Core 5.3.2).
    userinfo: await client.fetchUserInfo(A, a1.tokens.access_token, sub),
    introspect_access: await introspect(A, a1.tokens.access_token, 'access_token'),
    introspect_refresh: await introspect(A, a1.tokens.refresh_token, 'refresh_token'),
  };

  // 2. Refresh: a new token pair; the old refresh token is spent (rotation).
  const a2 = await client.refreshTokenGrant(A, a1.tokens.refresh_token);
  result.refresh = {
    claims: a2.claims() ?? null,
    rotated: a2.refresh_token !== a1.tokens.refresh_token,
    userinfo: await client.fetchUserInfo(A, a2.access_token, sub),
    introspect_old_refresh: await introspect(A, a1.tokens.refresh_token, 'refresh_token'),
    introspect_new_refresh: await introspect(A, a2.refresh_token, 'refresh_token'),
    introspect_new_access: await introspect(A, a2.access_token, 'access_token'),
  };
  // The old refresh token again: refused, and (reuse detection) its whole family is revoked.
  result.refresh.replay_old = await refused(client.refreshTokenGrant(A, a1.tokens.refresh_token));
  result.refresh.after_replay = {
    introspect_new_refresh: await introspect(A, a2.refresh_token, 'refresh_token'),
    introspect_new_access: await introspect(A, a2.access_token, 'access_token'),
    refresh_new: await refused(client.refreshTokenGrant(A, a2.refresh_token)),
  };

  // 3. Client A again, from a fresh discovery: the grant is remembered, the sub is stable.
  const A2 = await configure('A');
  const a3 = await signIn(A2, 'A', 'A-again');
  result.a3 = { claims: a3.claims };

  // 4. Revocation (RFC 7009) of a3's access token, then of its refresh token.
  const at = a3.tokens.access_token;
  const rt = a3.tokens.refresh_token;
  result.revoke = { introspect_access_before: await introspect(A2, at, 'access_token') };
  await client.tokenRevocation(A2, at, { token_type_hint: 'access_token' });
  result.revoke.introspect_access_after = await introspect(A2, at, 'access_token');
  result.revoke.userinfo_after = await refused(client.fetchUserInfo(A2, at, sub));
  result.revoke.introspect_refresh_before = await introspect(A2, rt, 'refresh_token');
  await client.tokenRevocation(A2, rt, { token_type_hint: 'refresh_token' });
  result.revoke.introspect_refresh_after = await introspect(A2, rt, 'refresh_token');
  result.revoke.refresh_after = await refused(client.refreshTokenGrant(A2, rt));

  // 5. Client B (sector localhost, RS256 ID tokens), the same person: a different sub, stable
  //    across sign-ins.
  const b1 = await signIn(B, 'B', 'B-first');
  result.b1 = {
    claims: b1.claims,
    userinfo: await client.fetchUserInfo(B, b1.tokens.access_token, b1.claims.sub),
    introspect_access: await introspect(B, b1.tokens.access_token, 'access_token'),
    introspect_refresh: await introspect(B, b1.tokens.refresh_token, 'refresh_token'),
  };
  const b2 = await signIn(B, 'B', 'B-again');
  result.b2 = { claims: b2.claims };

  // 6. Another person at client A (prompt=login makes the IdP ask who signs in).
  const p2 = await signIn(A, 'A', 'A-other-person', { prompt: 'login' });
  result.other_person = {
    claims: p2.claims,
    introspect_access: await introspect(A, p2.tokens.access_token, 'access_token'),
    // A client may not look at another client's tokens (live ones: these are).
    access_by_client_b: await introspect(B, p2.tokens.access_token, 'access_token'),
    refresh_by_client_b: await introspect(B, p2.tokens.refresh_token, 'refresh_token'),
  };

  send({ result });
}

// config.only === 'one_flow': a single code flow with client A (discovery, sign-in, ID token
// validation, userinfo), as tests/idp/card/test_independent_rp_verifiers.py runs once for each
// card verifier.
async function oneFlow() {
  const A = await configure('A');
  const a1 = await signIn(A, 'A', 'A-only');
  const userinfo = await client.fetchUserInfo(A, a1.tokens.access_token, a1.claims.sub);
  send({ result: { claims: a1.claims, nonce: a1.nonce, userinfo } });
}

// The library's error, its OAuth fields and its chain of causes (the message that says what
// exactly it rejected is often on the cause).
function describe(err, depth = 0) {
  if (!(err instanceof Error) || depth > 4) return err;
  const out = { name: err.name, message: err.message, code: err.code };
  for (const k of ['error', 'error_description', 'status']) {
    if (err[k] !== undefined) out[k] = err[k];
  }
  if (err.cause !== undefined) out.cause = describe(err.cause, depth + 1);
  return out;
}

(config.only === 'one_flow' ? oneFlow : main)().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write('openid-client refused: ' + JSON.stringify(describe(err), null, 2) + '\n');
    process.stderr.write((err?.stack ?? String(err)) + '\n');
    process.exit(1);
  },
);
