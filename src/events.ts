// # Events: what a session tells the app, and the fence around the app's code
//
// A session speaks to the app through events (`message`, `close`, …) and
// send callbacks. Both run the app's code inside the server, in the
// middle of handling a request, so two things matter here: that the app's
// TypeScript knows every event's arguments, and that an exception thrown
// by the app can neither crash the process nor leave a session
// half-updated.
//
// ```ts
// session.on('message', (message) => { throw new Error('bug'); });
// // → session.on('error') listeners, else channel.on('error'), else console.error
// ```
/** Typed session events and fenced calls into app code. @module */
import { captureRejectionSymbol } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { Downlink } from './backchannel.ts';
import type { ClientMap } from './maps.ts';
import type { SendCallback } from './outbox.ts';
import type { SessionState } from './session.ts';

// ## The events, for TypeScript
/** Every event a {@link Session} emits, with its listener's signature. */
export interface SessionEvents<In = unknown> {
  /** A message from the client: parsed `JSON`/`__data__`, an `_S` string, or a JSON-body item. */
  message: (message: In) => void;
  /** A map from the client, in order, before its `message`. */
  map: (map: ClientMap) => void;
  /** The session moved from `previous` to `state`. */
  'state changed': (state: SessionState, previous: SessionState) => void;
  /** The session ended: `Disconnected`, `Timed out`, `Reconnected`, or what `close` was given. */
  close: (reason: string) => void;
  /** App code attached to this session threw. */
  error: (error: unknown) => void;
  /** The client has acknowledged everything sent: `bufferedBytes` is back to 0. */
  drain: () => void;
  /** The request that created the session (emitted once, after `onConnect`). */
  req: (req: IncomingMessage) => void;
}

// ## The class
//
// A layer of `Session` (`session.ts`), between the back channel
// (`backchannel.ts`) and the session proper: one object at run time.
/** @internal Typed listeners and fenced app calls for a {@link Session}. */
export abstract class AppEvents<In> extends Downlink {
  /** @internal Where an error goes when the session has no `error` listener. */
  protected abstract appError(error: unknown): void;

  // ## Typed events
  //
  // The same `EventEmitter` methods, with each event's arguments spelled
  // out, so `session.on('message', (m: In) => …)` type-checks and a
  // misspelt event or a wrong listener does not. They only narrow types.
  /** Adds a listener for one of the session's events (see {@link SessionEvents}). */
  override on<E extends keyof SessionEvents<In>>(event: E, listener: SessionEvents<In>[E]): this {
    return super.on(event, listener);
  }

  /** Adds a listener that runs once. */
  override once<E extends keyof SessionEvents<In>>(event: E, listener: SessionEvents<In>[E]): this {
    return super.once(event, listener);
  }

  /** Removes a listener. */
  override off<E extends keyof SessionEvents<In>>(event: E, listener: SessionEvents<In>[E]): this {
    return super.off(event, listener);
  }

  /** Same as `on`. */
  override addListener<E extends keyof SessionEvents<In>>(event: E,
    listener: SessionEvents<In>[E]): this {
    return super.addListener(event, listener);
  }

  /** Same as `off`. */
  override removeListener<E extends keyof SessionEvents<In>>(event: E,
    listener: SessionEvents<In>[E]): this {
    return super.removeListener(event, listener);
  }

  // ## App code runs fenced
  //
  // Listeners and callbacks are the app's code, and an exception in one
  // must not leave the session half-updated or crash the server. Each call
  // is caught; the error goes to the session's `error` listeners, or, if
  // there are none, to the server's (`middleware.on('error')`), which
  // prints it when nobody listens there either. It is never swallowed.
  //
  // An `async` listener or callback does not throw: it returns a Promise
  // that rejects later, which Node would treat as unhandled and end the
  // whole process for (every session with it). So those Promises are
  // caught too, and their errors go the same way:
  //
  // ```ts
  // session.on('message', async (message) => {
  //   await db.save(message);   // rejects: session.on('error') hears it
  // });
  // ```
  /** @internal Emits an event to the app's listeners, fenced. */
  protected emitApp(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (error) {
      this.reportAppError(error);
    }
  }

  /** @internal Calls an app callback, fenced. */
  protected callApp(callback: SendCallback, error?: Error): void {
    try {
      const result: unknown = callback(error);
      if (isPromise(result)) result.then(undefined, (failed) => this.reportAppError(failed));
    } catch (thrown) {
      this.reportAppError(thrown);
    }
  }

  // A listener's Promise is caught by `EventEmitter` itself (the session
  // is made with `captureRejections`), which hands the error here. One
  // from an `error` listener skips the session's `error` listeners, which
  // would only fail again.
  /** @internal Where `EventEmitter` reports a listener's rejected Promise. */
  override [captureRejectionSymbol](error: unknown, event: string | symbol): void {
    if (event === 'error') this.appError(error);
    else this.reportAppError(error);
  }

  // An `error` listener that throws in turn goes to the server's
  // listeners: given back to the session's, it would throw again, for ever.
  private reportAppError(error: unknown): void {
    if (this.listenerCount('error') === 0) return this.appError(error);
    try {
      this.emit('error', error);
    } catch (thrown) {
      this.appError(thrown);
    }
  }
}

/** @internal Whether `value` is a Promise (or any thenable) whose failure must be caught. */
export function isPromise(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
