/** A real sign-in without a browser; the `Cookie` header of the relay's session. */
export function signIn(o: {
  /** The relay, `https://127.0.0.1:<port>`. */
  base: string;
  /** The app's external host, with its port if not 443. */
  host: string;
  username: string;
  password: string;
}): Promise<string>;
