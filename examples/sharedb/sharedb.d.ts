// The little of ShareDB's API the example and its test use; the `sharedb`
// package ships no type declarations.
declare module 'sharedb' {
  import type { Duplex } from 'node:stream';
  import type { Connection } from 'sharedb/lib/client';
  class Backend {
    constructor(options?: object);
    /** Serves one client over an object-mode Duplex stream. */
    listen(stream: Duplex, req?: unknown): { closed: boolean };
    /** A client connection inside the server process. */
    connect(): Connection;
    close(callback?: () => void): void;
  }
  export = Backend;
}

declare module 'sharedb/lib/client' {
  type Callback = (error?: Error | null) => void;
  export interface Doc {
    readonly id: string;
    readonly data: any;
    readonly version: number | null;
    readonly type: unknown;
    subscribe(callback?: Callback): void;
    fetch(callback?: Callback): void;
    create(data: unknown, callback?: Callback): void;
    submitOp(op: unknown, callback?: Callback): void;
    hasPending(): boolean;
    whenNothingPending(callback: () => void): void;
    on(event: 'op', listener: (op: unknown, source: unknown) => void): this;
  }
  export class Connection {
    constructor(socket: unknown);
    readonly state: string;
    get(collection: string, id: string): Doc;
    on(event: 'state', listener: (state: string, reason: string) => void): this;
    close(): void;
  }
}
