/// <reference lib="dom" />
// The page side of firestore.test.ts: the real `firebase` browser SDK,
// bundled by esbuild, pointed at our server with connectFirestoreEmulator.
// The test drives it through `window.fs`.
import { initializeApp } from 'firebase/app';
import { connectFirestoreEmulator, doc, getDoc, initializeFirestore, onSnapshot, setDoc, setLogLevel } from 'firebase/firestore';

interface Seen {
  readonly data: unknown;
  readonly fromCache: boolean;
  readonly pending: boolean;
  readonly at: number;
}

let db: ReturnType<typeof initializeFirestore>;
const snapshots: Seen[] = [];
const errors: string[] = [];

const api = {
  snapshots,
  errors,
  open(host: string, port: number, forceLongPolling: boolean, debug: boolean): void {
    if (debug) setLogLevel('debug');
    const app = initializeApp({ projectId: 'demo-bc', apiKey: 'not-a-key', appId: 'demo' });
    db = initializeFirestore(app, forceLongPolling ? { experimentalForceLongPolling: true } : {});
    connectFirestoreEmulator(db, host, port);
  },
  async read(path: string): Promise<unknown> {
    return (await getDoc(doc(db, path))).data() ?? null;
  },
  listen(path: string): void {
    onSnapshot(
      doc(db, path),
      { includeMetadataChanges: true },
      (snapshot) => {
        const seen = { data: snapshot.data() ?? null, fromCache: snapshot.metadata.fromCache, pending: snapshot.metadata.hasPendingWrites };
        snapshots.push({ ...seen, at: Date.now() });
      },
      (error) => errors.push(String(error)),
    );
  },
  async write(path: string, data: Record<string, unknown>): Promise<void> {
    await setDoc(doc(db, path), data);
  },
};

(window as unknown as { fs: typeof api }).fs = api;
