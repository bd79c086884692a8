/**
 * Relay counters and their Prometheus text exposition (`GET /metrics`).
 * Counters only: no IDs, no payloads, no per-client labels.
 * @module
 */

/** Counters kept by the relay. */
export class RelayMetrics {
  #started = performance.now();
  #connectionsTotal = 0;
  #registrations = 0;
  #registrationFailures = 0;
  #framesForwarded = 0;
  #bytesForwarded = 0;
  #socketErrors = 0;
  readonly #dropped = new Map<string, number>();
  readonly #errors = new Map<string, number>();
  readonly #closes = new Map<number, number>();

  /** A WebSocket was accepted. */
  connectionOpened(): void {
    this.#connectionsTotal++;
  }
  /** A WebSocket closed (gauges are computed from the live table). */
  connectionClosed(): void {}
  /** A registration succeeded. */
  registered(): void {
    this.#registrations++;
  }
  /** A registration signature failed. */
  registrationFailed(): void {
    this.#registrationFailures++;
  }
  /** A DATA frame of `bytes` bytes was forwarded. */
  forwarded(bytes: number): void {
    this.#framesForwarded++;
    this.#bytesForwarded += bytes;
  }
  /** A frame or request was refused for `reason`. */
  dropped(reason: string): void {
    this.#dropped.set(reason, (this.#dropped.get(reason) ?? 0) + 1);
  }
  /** An ERROR frame with `code` was sent. */
  error(code: string): void {
    this.#errors.set(code, (this.#errors.get(code) ?? 0) + 1);
  }
  /** The relay closed a connection with `code`. */
  closed(code: number): void {
    this.#closes.set(code, (this.#closes.get(code) ?? 0) + 1);
  }
  /** A WebSocket error event. */
  socketError(): void {
    this.#socketErrors++;
  }
  /** Seconds since the relay started. */
  uptimeSeconds(): number {
    return (performance.now() - this.#started) / 1000;
  }
  /** Frames forwarded so far. */
  get framesForwarded(): number {
    return this.#framesForwarded;
  }
  /** Count of frames dropped for `reason`. */
  droppedCount(reason: string): number {
    return this.#dropped.get(reason) ?? 0;
  }

  /** Count of connections the relay closed with `code`. */
  closeCount(code: number): number {
    return this.#closes.get(code) ?? 0;
  }

  /** Prometheus text format 0.0.4. */
  render(connections: number, registered: number): string {
    const lines: string[] = [];
    const metric = (
      name: string,
      type: string,
      help: string,
      samples: [string, number][],
    ) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
    };
    const labelled = (
      label: string,
      m: Map<string | number, number>,
    ): [string, number][] =>
      [...m].sort().map(([k, v]) => [`{${label}="${k}"}`, v]);
    metric("relay_connections", "gauge", "Open WebSocket connections.", [[
      "",
      connections,
    ]]);
    metric("relay_registered", "gauge", "Connections bound to a session ID.", [[
      "",
      registered,
    ]]);
    metric(
      "relay_connections_total",
      "counter",
      "WebSocket connections accepted.",
      [[
        "",
        this.#connectionsTotal,
      ]],
    );
    metric(
      "relay_registrations_total",
      "counter",
      "Successful registrations.",
      [[
        "",
        this.#registrations,
      ]],
    );
    metric(
      "relay_registration_failures_total",
      "counter",
      "Registrations refused.",
      [[
        "",
        this.#registrationFailures,
      ]],
    );
    metric(
      "relay_frames_forwarded_total",
      "counter",
      "DATA frames forwarded.",
      [[
        "",
        this.#framesForwarded,
      ]],
    );
    metric(
      "relay_bytes_forwarded_total",
      "counter",
      "DATA bytes forwarded (headers included).",
      [[
        "",
        this.#bytesForwarded,
      ]],
    );
    metric(
      "relay_frames_dropped_total",
      "counter",
      "Frames or requests refused, by reason.",
      labelled("reason", this.#dropped),
    );
    metric(
      "relay_errors_total",
      "counter",
      "ERROR frames sent, by code.",
      labelled("code", this.#errors),
    );
    metric(
      "relay_closes_total",
      "counter",
      "Connections closed by the relay, by close code.",
      labelled("code", this.#closes),
    );
    metric("relay_socket_errors_total", "counter", "WebSocket error events.", [[
      "",
      this.#socketErrors,
    ]]);
    metric("relay_uptime_seconds", "gauge", "Seconds since start.", [[
      "",
      Math.round(this.uptimeSeconds()),
    ]]);
    const mem = Deno.memoryUsage();
    metric("process_resident_memory_bytes", "gauge", "Resident set size.", [[
      "",
      mem.rss,
    ]]);
    metric("relay_heap_used_bytes", "gauge", "V8 heap in use.", [[
      "",
      mem.heapUsed,
    ]]);
    metric("relay_heap_total_bytes", "gauge", "V8 heap reserved.", [[
      "",
      mem.heapTotal,
    ]]);
    metric(
      "relay_external_memory_bytes",
      "gauge",
      "Memory held outside the V8 heap by JS objects (buffers).",
      [["", mem.external]],
    );
    return lines.join("\n") + "\n";
  }
}
