/** A real sign-in without a browser; the `Cookie` header of the relay's session. */
export function signIn(o: {
  /** The relay, `https://127.0.0.1:<port>`. */
  base: string;
  /** The app's external host, with its port if not 443. */
  host: string;
  username: string;
  password: string;
}): Promise<string>;

/**
 * The same through any sign-in of the relay (its start, callback path and session cookie;
 * the admin console's on the admin listener over http): the callback's status and the
 * session's `Cookie` header.
 */
export function signInAt(o: {
  /** The relay, `https://127.0.0.1:<port>` or `http://…`. */
  base: string;
  /** The Host header; default: the host of `base`. */
  host?: string;
  /** Path and query where the sign-in starts. */
  start: string;
  /** The callback's path. */
  callback: string;
  /** The session cookie's name (and its chunks'). */
  cookie: RegExp;
  username: string;
  password: string;
}): Promise<{ status: number; cookie: string }>;
