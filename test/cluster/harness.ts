// A cluster on one machine for tests: a private redis-server, nginx with a
// given config, and N server processes, all on free 127.0.0.1 ports, in a
// temporary directory, and all stopped by `stop()`. Never the system
// services. Issue 17 (recovery across processes) reuses this.
//
//   const redis = await startRedis();
//   const nodes = await Promise.all(['n1', 'n2'].map((id) => startNode(id, redis.url)));
//   const proxy = await startNginx(nginxConfig({ listen: port, nodes: … }));
//   … nodes[0].kill9(); await redis.restart(); …
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Whether redis-server and nginx are installed (tests skip, saying what to install, when not). */
export function missingBinaries(): string[] {
  return ['redis-server', 'nginx'].filter((name) => spawnSync('sh', ['-c', `command -v ${name} || test -x /usr/sbin/${name}`]).status !== 0);
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen.slice(-500)}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString();
      const match = pattern.exec(seen);
      if (!match) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      resolve(match[0]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}): ${seen.slice(-500)}`));
    });
  });
}

async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

// ## Redis
export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Stops it (SIGKILL, like a crash) and, after `downMs`, starts it again on the same port, empty. */
  restart(downMs?: number): Promise<void>;
  /** Stops it for good. */
  stop(): Promise<void>;
  /** Stops it without starting it again. */
  kill(): Promise<void>;
  /** Starts it again after `kill`. */
  start(): Promise<void>;
  /** Freezes it (SIGSTOP) for `ms`: connections stay open and nothing answers, then SIGCONT. */
  hang(ms: number): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // With --loglevel warning redis prints nothing on start, so poll with PING.
    for (let i = 0; i < 100; i++) {
      if (await ping(port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('redis-server did not start');
  };
  await start();
  const kill = async () => stopChild(child, 'SIGKILL');
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    restart: async (downMs = 500) => {
      await kill();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
    },
    stop: kill,
    hang: async (ms) => {
      child?.kill('SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, ms));
      child?.kill('SIGCONT');
    },
  };
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

// ## nginx
export interface TestNginx {
  readonly port: number;
  readonly dir: string;
  /** The error log so far. */
  errorLog(): string;
  stop(): Promise<void>;
}

/** Starts nginx with `config` (from deploy/nginx-config.mjs), in the foreground, in a temp dir. */
export async function startNginx(config: string, port: number): Promise<TestNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-nginx-'));
  writeFileSync(join(dir, 'nginx.conf'), config);
  const binary = spawnSync('sh', ['-c', 'command -v nginx || echo /usr/sbin/nginx']).stdout.toString().trim();
  const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    if (await canConnect(port)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    dir,
    errorLog: () => readFileSync(join(dir, 'error.log'), 'utf8'),
    stop: async () => {
      await stopChild(child, 'SIGQUIT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether something listens on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ## Server processes
export interface TestNode {
  readonly id: string;
  readonly port: number;
  readonly address: string;
  /** `kill -9`. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
  /** GET a control path (`/ids`, `/stats`) on this process directly. */
  get<T>(path: string): Promise<T>;
  /** Lines the process printed on stdout since it started (kept past its death). */
  readonly output: string[];
}

/** Starts a server process (`script`, default test/cluster/node.ts) with NODE_ID, NODE_PORT, REDIS_URL. */
export async function startNode(id: string, redisUrl: string, script = join(here, 'node.ts'), env: Record<string, string> = {}): Promise<TestNode> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, NODE_ID: id, NODE_PORT: String(port), REDIS_URL: redisUrl, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await waitForLine(child, /ready \S+ \d+/, `node ${id}`);
  const output: string[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    output.push(...lines);
  });
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[${id}] ${chunk}`));
  return {
    id,
    port,
    address: `127.0.0.1:${port}`,
    kill9: () => stopChild(child, 'SIGKILL'),
    stop: () => stopChild(child, 'SIGTERM'),
    get: async <T>(path: string) => (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as T,
    output,
  };
}
