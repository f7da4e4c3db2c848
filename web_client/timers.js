// Timers that belong to one owner (a session, a connection) and are all cancelled with it.

export class Timers {
  constructor() {
    this._pending = new Set();
  }

  /** Run `work` after `ms`, unless cancelled first. */
  after(ms, work) {
    const timer = setTimeout(() => {
      this._pending.delete(timer);
      work();
    }, ms);
    this._pending.add(timer);
  }

  cancel() {
    for (const timer of this._pending) clearTimeout(timer);
    this._pending.clear();
  }
}
