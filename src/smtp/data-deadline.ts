/*
 * The DATA deadline, after Postfix's smtpd_timeout with smtpd_min_data_rate:
 * the client has client_idle, plus one second for every `rate` bytes it has
 * sent, to finish its message. A client sending one byte a second (slowloris)
 * is cut off soon after client_idle, however long it keeps trickling, while
 * a large message at any sane speed never comes near the limit. Silence is
 * bounded separately by smtp-server's own idle timer (client_idle too).
 */
export class DataDeadline {
  private bytes = 0;
  private readonly start = Date.now();
  private lastBytes = Date.now();
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
      // A silent client is smtp-server's idle timeout (reported as client_idle);
      // this deadline is for one that keeps trickling.
      if (now >= this.deadline && now - this.lastBytes < this.idleMs) {
        this.timer = undefined;
        this.onExpire();
      } else this.arm(now >= this.deadline ? this.idleMs : this.deadline - now);
    }, Math.max(1, wait));
  }
}
