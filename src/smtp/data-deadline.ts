/*
 * The DATA deadline, after Postfix's smtpd_timeout with smtpd_min_data_rate:
 * the client has client_idle, plus one second for every `rate` bytes it has
 * sent, to finish its message. A client sending one byte a second (slowloris)
 * is cut off soon after client_idle, however long it keeps trickling, while
 * a large message at any sane speed never comes near the limit. Silence is
 * bounded separately by smtp-server's own idle timer (client_idle too).
 */
const SILENCE_GRACE_MS = 1000;

export class DataDeadline {
  private bytes = 0;
  private readonly start = Date.now();
  private lastBytes = Date.now();
  private deferred = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly idleMs: number,
    /** Bytes per second; 0 switches the rate part off. */
    private readonly rate: number,
    private readonly onExpire: () => void,
  ) {
    if (rate > 0) this.arm();
  }

  add(n: number): void {
    this.bytes += n;
    this.lastBytes = Date.now();
    this.deferred = false;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private get deadline(): number {
    return this.start + this.idleMs + (this.bytes * 1000) / this.rate;
  }

  private arm(wait = this.deadline - Date.now()): void {
    this.timer = setTimeout(() => {
      const now = Date.now();
      if (now < this.deadline) return this.arm();
      // A client that looks silent is left to smtp-server's idle timer for a
      // moment (it is reported as client_idle). If the session is still open
      // after that, the client is trickling: smtp-server holds back the last
      // bytes it read (they could start the end-of-data mark), so a slow
      // enough client can look silent here while its socket is busy.
      if (now - this.lastBytes >= this.idleMs && !this.deferred) {
        this.deferred = true;
        return this.arm(Math.min(SILENCE_GRACE_MS, this.idleMs / 4));
      }
      this.timer = undefined;
      this.onExpire();
    }, Math.max(1, wait));
  }
}
