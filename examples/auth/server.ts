// # Authenticating sessions: a runnable example
//
// A server that admits a client only with a valid signed token, taken
// from whichever place the client can put it:
//
// | client | where the token travels | read from |
// |---|---|---|
// | any browser client, same site | a cookie `token=…` | `headers.cookie` |
// | our `BCSocket`, Closure `BCSocket` | `extraHeaders: { Authorization }` | `headers.authorization` |
// | WebChannel (Firestore style) | `initMessageHeaders: { Authorization }` | `headers.authorization` (merged in) |
// | anything that can only add URL parameters | `extraParams: { token }` | `query.token` |
//
// Tokens are `<user>.<signature>`, the signature an HMAC of the user name
// under a server secret, so the server needs no token store. The check
// runs once, before the session exists; afterwards the session id is the
// credential, and `session.data.user` says who it belongs to.
//
// Run it: `npx tsx examples/auth/server.ts`, then open a channel with
// `?token=` followed by a token that `signToken('ada', secret)` makes.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import browserChannel, { type AllowRequest, type Session } from '../../src/index.ts';

/** Makes a token for `user`: `ada.3q2…`. */
export function signToken(user: string, secret: string): string {
  return `${user}.${createHmac('sha256', secret).update(user).digest('base64url')}`;
}

/** The user a token names, or null if its signature is wrong. */
export function verifyToken(token: string, secret: string): string | null {
  const dot = token.lastIndexOf('.');
  if (dot <= 0) return null;
  const user = token.slice(0, dot);
  const expected = Buffer.from(signToken(user, secret));
  const given = Buffer.from(token);
  return expected.length === given.length && timingSafeEqual(expected, given) ? user : null;
}

// The token, from the first place that has one.
function tokenOf(headers: http.IncomingHttpHeaders, query: Record<string, string>): string | null {
  const bearer = /^Bearer (\S+)$/.exec(headers.authorization ?? '');
  if (bearer) return bearer[1]!;
  const cookie = /(?:^|;\s*)token=([^;]+)/.exec(headers.cookie ?? '');
  if (cookie) return decodeURIComponent(cookie[1]!);
  return query.token ?? null;
}

/** Starts the example server on `port` (0: any free port). */
export function createAuthServer(secret: string, port = 0) {
  // No token is 401 (log in first); a bad one is 403 (you are not who
  // you say). Both are final for our client: it will not retry.
  const allowRequest: AllowRequest = (req, { headers, query }) => {
    const token = tokenOf(headers, query);
    if (token === null) return { status: 401, reason: 'Token required' };
    return verifyToken(token, secret) === null ? { status: 403, reason: 'Bad token' } : true;
  };
  const channel = browserChannel<string, string, { user: string }>({ allowRequest },
    (session: Session<string, string, { user: string }>) => {
      // allowRequest has vouched for the token; read the user from it again.
      session.data.user = verifyToken(tokenOf(session.headers, session.query)!, secret)!;
      session.send(`hello ${session.data.user}`);
      session.on('message', (text) => session.send(`${session.data.user} said ${text}`));
    });
  const server = http.createServer(channel);
  server.listen(port, '127.0.0.1');
  return { server, channel };
}

// Started directly, it prints a URL and a token to try.
if (import.meta.url === `file://${process.argv[1]}`) {
  const secret = process.env.SECRET ?? 'change me';
  const { server } = createAuthServer(secret, Number(process.env.PORT ?? 4322));
  server.on('listening', () => {
    const { port } = server.address() as { port: number };
    console.log(`listening on http://127.0.0.1:${port}/channel, token for ada: ${signToken('ada', secret)}`);
  });
}
