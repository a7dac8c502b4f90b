// ws hands its client options on to https.request() and tls.connect() (lib/websocket.js,
// tlsConnect), so `servername` (the SNI name) is honoured; @types/ws leaves it out.
import 'ws';

declare module 'ws' {
  namespace WebSocket {
    interface ClientOptions {
      servername?: string | undefined;
    }
  }
}
