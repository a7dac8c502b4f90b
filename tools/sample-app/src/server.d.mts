// Types of server.mjs, from its JSDoc typedefs (kept in step by hand: the JS is the source).
import type { IncomingHttpHeaders } from 'node:http';

/** One request as the app received it (upgrade requests included). */
export type RecordedRequest = {
  method: string;
  /** exactly `req.url` as received (no normalisation) */
  rawUrl: string;
  headers: IncomingHttpHeaders;
};

/** A running sample app. */
export type SampleApp = {
  /** origin + basePath, e.g. `http://127.0.0.1:41234/app/` */
  url: string;
  /** e.g. `http://127.0.0.1:41234` */
  origin: string;
  /** the port actually listened on */
  port: number;
  /** every request ever received, any path, in arrival order */
  requests: RecordedRequest[];
  /**
   * uploads whose body arrived complete: `id` is the request's `X-Upload-Id` header
   * (undefined when absent)
   */
  uploads: Array<{ id: string; bytes: number }>;
  /** closes the server, every socket and every WebSocket */
  close: () => Promise<void>;
};

export type SampleAppOptions = {
  /** listen address (default 127.0.0.1) */
  host?: string;
  /** listen port (default 0: any free port) */
  port?: number;
  /** where the app is mounted (default `/`); normalised to `/x/` */
  basePath?: string;
  /** called for every request (the CLI logs) */
  onRequest?: (entry: RecordedRequest) => void;
};

export declare const MIB: number;
export declare const MAX_DOWNLOAD_MIB: 4096;

/** The deterministic bytes of `/download?mib=N`: N chunks of 1 MiB (the same shared Buffer). */
export declare function downloadChunks(mib: number): Generator<Buffer, void, void>;

/** Hex SHA-256 of the bytes `/download?mib=N` sends. */
export declare function expectedDownloadSha256(mib: number): string;

export declare function normalizeBasePath(basePath: string): string;

/** Starts the sample app. */
export declare function startSampleApp(opts?: SampleAppOptions): Promise<SampleApp>;
