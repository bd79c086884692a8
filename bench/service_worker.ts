/**
 * A Worker thread of simulated customers for the service bench
 * (bench/service_customer.ts {@link CustomerThreads}): it creates and drives
 * {@link Customer}s as its parent asks, one request at a time per message,
 * and reports each customer's relay link changes.
 * @module
 */

import {
  Customer,
  type CustomerPolicy,
  type CustomerReply,
  type CustomerRequest,
} from "./service_customer.ts";
import type { Bytes } from "../lib/bytes.ts";

/** The worker's global scope (the project's type checking knows the window's). */
const scope = self as unknown as {
  postMessage(r: CustomerReply): void;
  onmessage: (e: MessageEvent<CustomerRequest>) => void;
};
const customers: Customer[] = [];
const post = (r: CustomerReply) => scope.postMessage(r);

scope.onmessage = async (e: MessageEvent<CustomerRequest>) => {
  const { id, op, idx, args } = e.data;
  try {
    let value: unknown;
    if (op === "create") {
      const c = await Customer.create(
        args[0] as Bytes,
        args[1] as CustomerPolicy,
      );
      const i = customers.push(c) - 1;
      c.onLink = (open, lost) => post({ kind: "link", idx: i, open, lost });
      value = i;
    } else {
      const c = customers[idx];
      switch (op) {
        case "connect":
          await c.connect(args[0] as string, args[1] as string);
          value = c.peerName;
          break;
        case "auto":
          await c.setAutoReconnect(args[0] as boolean);
          break;
        case "dial":
          await c.dial();
          break;
        case "send":
          await c.send(args[0] as Uint8Array[]);
          break;
        case "close":
          await c.close();
          break;
        case "stop":
          await c.stop();
          break;
      }
    }
    post({ kind: "reply", id, value });
  } catch (err) {
    post({
      kind: "reply",
      id,
      error: (err as Error)?.message ?? String(err),
    });
  }
};
