import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/**
 * Temp dirs and servers that are removed and closed after each test, in reverse order,
 * whether it passed or not.
 */
export function useCleanup() {
  const tasks: Array<() => unknown> = [];
  afterEach(async () => {
    for (const task of tasks.splice(0).reverse()) await task();
  });
  const defer = (task: () => unknown) => void tasks.push(task);

  return {
    defer,

    async tempDir(): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), 'appproxy-pki-'));
      defer(() => rm(dir, { recursive: true, force: true }));
      return dir;
    },

    /** Listens on 127.0.0.1, port 0; returns the port. Closing destroys open sockets. */
    async listen(server: Server): Promise<number> {
      const sockets = new Set<Socket>();
      server.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      defer(
        () =>
          new Promise<void>((resolve) => {
            sockets.forEach((socket) => socket.destroy());
            server.close(() => resolve());
          }),
      );
      return (server.address() as AddressInfo).port;
    },
  };
}
