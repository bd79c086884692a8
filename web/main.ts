/**
 * The customers' browser client (entry point of the bundle `web/dist/app.js`,
 * built by `deno task web:build`, served by `deno task web`). A thin driver:
 * IndexedDB keys (web/store.ts), the relay WebSocket (web/relay_socket.ts),
 * the page. All protocol logic is lib/'s, the same code the CLI runs.
 * @module
 */

import {
  formatAddress,
  parsePeerAddress,
  type PeerAddress,
} from "../lib/address.ts";
import { fingerprint, formatFingerprint } from "../lib/fingerprint.ts";
import { ProtocolError } from "../lib/errors.ts";
import type { Bytes } from "../lib/bytes.ts";
import { $, download, setText } from "./dom.ts";
import { RelaySocket, type RelayState } from "./relay_socket.ts";
import { KeyStore, type LoadedKeys } from "./store.ts";
import { Chat } from "./chat.ts";

/** File name of a backup: the CLI's customer identity file name. */
const BACKUP_FILE_NAME = "customer_identity_keys.json";
/** Shortest backup passphrase accepted. */
const MIN_PASSPHRASE = 8;

/** The relay this page may talk to (the CSP's connect-src allows only it). */
function configuredRelay(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="relay"]');
  const url = meta?.content ?? "";
  if (!url.startsWith("wss://")) {
    throw new Error(
      "this page has no relay configured (deno task web --relay URL)",
    );
  }
  return url;
}

/** Shows a problem a person must act on (or clears it with ""). */
function problem(text: string): void {
  const p = $("problem");
  p.textContent = text;
  p.hidden = text === "";
}

/** What to tell a person about the relay connection. */
export function describeRelay(state: RelayState, relay: string): {
  pill: string;
  /** undefined: keep what is shown (a retry does not clear the explanation). */
  problem?: string;
} {
  const host = new URL(relay).host;
  switch (state.kind) {
    case "connecting":
      return state.attempt > 1
        ? { pill: "Not connected (retrying…)" }
        : { pill: "Connecting…", problem: "" };
    case "registered":
      return { pill: "Connected", problem: "" };
    case "failed": {
      const retry = `Trying again in ${Math.ceil(state.retryInMs / 1000)} s.`;
      if (state.opened) {
        return {
          pill: "Reconnecting…",
          problem: state.attempt > 2
            ? `The connection to the message relay (${host}) was lost. ${retry}`
            : "",
        };
      }
      return {
        pill: "Not connected",
        problem:
          `Cannot reach the message relay ${host}. Either it is down or blocked by your network, ` +
          `it does not accept pages from this web site, ` +
          `or your browser does not trust its certificate (browsers do not say which). ` +
          `To check the certificate, open https://${host}/healthz in a new tab: a certificate warning ` +
          `means your device lacks the CA your bank gave you. ${retry}`,
      };
    }
    case "refused":
      return {
        pill: "Not connected",
        problem: state.code === 4000
          ? "This page was opened in another tab or browser with the same key; only one can be connected. Close the other one and reload this page."
          : `The message relay refused this page: ${state.reason}. Reload the page to try again.`,
      };
  }
}

/** The peer address in the page's fragment (`…/#wss://…#ca=…&id=…`), if any. */
function fragmentAddress(): string | undefined {
  const h = location.hash.slice(1);
  if (h === "") return undefined;
  try {
    return decodeURIComponent(h);
  } catch {
    return h;
  }
}

/** Parses a pasted or linked address; an error message for a person when bad. */
export function checkAddress(
  text: string,
  relay: string,
): PeerAddress | string {
  if (text.trim() === "") return "Paste your bank's address first.";
  let addr: PeerAddress;
  try {
    addr = parsePeerAddress(text);
  } catch (e) {
    return `That is not a valid address: ${(e as Error).message}.`;
  }
  if (addr.relay !== undefined && addr.relay !== new URL(relay).href) {
    return `This address uses another relay (${
      new URL(addr.relay).host
    }); this page can only use ${
      new URL(relay).host
    }. Ask your bank for the address it gives for this page.`;
  }
  if (addr.ed !== undefined && addr.fp === undefined) {
    // Pinned to an Ed25519 key only (suite x25519), which this page does not speak.
    return "This address names only your bank's fast-suite (Ed25519) key, which this page cannot use. Ask your bank for its full address (with fp=).";
  }
  return addr;
}

function setupBackup(store: KeyStore, keys: LoadedKeys): void {
  const status = (t: string) => setText("backup-status", t);
  const refresh = async () => {
    const can = await store.canExport();
    ($("export-passphrase") as HTMLInputElement).hidden = can !== "fresh";
    $("export-passphrase").previousElementSibling!.toggleAttribute(
      "hidden",
      can !== "fresh",
    );
    ($("export-button") as HTMLButtonElement).disabled = can === "no";
    if (can === "no") {
      setText(
        "export-help",
        "This key was created on an earlier visit without a backup; it cannot be read out of the browser any more. To have a backup, restore a key from a backup file below (your bank will see a new key).",
      );
    } else if (can === "stored") {
      setText(
        "export-help",
        "Download the encrypted backup you made (the same file format as the command-line client's identity file). It opens only with your passphrase.",
      );
    }
  };
  if (keys.created) $("backup").setAttribute("open", "");
  refresh();
  $("export-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("export-passphrase") as HTMLInputElement;
    const can = await store.canExport();
    if (can === "fresh" && input.value.length < MIN_PASSPHRASE) {
      status(`Choose a passphrase of at least ${MIN_PASSPHRASE} characters.`);
      input.focus();
      return;
    }
    status("Encrypting the backup…");
    const json = await store.backup(input.value);
    input.value = "";
    if (json === undefined) return status("No backup can be made.");
    download(BACKUP_FILE_NAME, json, "application/json");
    status("Backup downloaded. Keep it and its passphrase apart.");
    await refresh();
  });
  $("import-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = ($("import-file") as HTMLInputElement).files?.[0];
    const pass = $("import-passphrase") as HTMLInputElement;
    if (file === undefined) return status("Choose the backup file first.");
    if (
      !confirm(
        "Replace the key in this browser by the one in the backup? Peers who know the current key will see a key change.",
      )
    ) return;
    try {
      const identity = await store.importBackup(
        await file.text(),
        pass.value,
        file.name,
      );
      pass.value = "";
      status("Key restored. Reloading…");
      await showFingerprint(identity.spki);
      location.reload();
    } catch (e) {
      status(
        e instanceof ProtocolError && e.code === "bad-passphrase"
          ? "Wrong passphrase for this backup."
          : `Cannot restore: ${(e as Error).message}`,
      );
    }
  });
}

async function showFingerprint(spki: Bytes): Promise<void> {
  $("my-fingerprint").querySelector(".mono")!.textContent = formatFingerprint(
    await fingerprint(spki),
  );
}

async function boot(): Promise<void> {
  const relayUrl = configuredRelay();
  const { store, keys } = await KeyStore.open();
  await showFingerprint(keys.identity.spki);
  setupBackup(store, keys);
  const address = formatAddress(relayUrl, keys.mailbox.id);
  setText("my-address", address);
  const copy = $("copy-address") as HTMLButtonElement;
  copy.disabled = false;
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(address);
      copy.textContent = "Copied";
    } catch {
      const sel = getSelection();
      sel?.selectAllChildren($("my-address"));
      copy.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => copy.textContent = "Copy", 3000);
  });

  const relay = new RelaySocket(relayUrl, keys.mailbox);
  const peers = await store.knownPeers();
  const chat = new Chat({
    identity: keys.identity,
    localId: keys.mailbox.id,
    relay,
    peers,
    savePeers: () => store.saveKnownPeers(peers),
  });
  const contact = async (text: string) => {
    const r = checkAddress(text, relayUrl);
    setText("connect-error", typeof r === "string" ? r : "");
    if (typeof r === "string") return $("peer-address").focus();
    $("connect").hidden = true;
    await chat.contact(r.id, r.fp, r.ed);
  };
  const linked = fragmentAddress();
  if (linked !== undefined) {
    ($("peer-address") as HTMLInputElement).value = linked;
  }
  let wasRegistered = false;
  const failed = (e: unknown) => {
    problem(
      `Something went wrong in the conversation: ${
        (e as Error).message
      }. Reload the page.`,
    );
    console.error(e);
  };
  relay.onFrame = (frame) => void chat.frame(frame).catch(failed);
  relay.onState = (state) => {
    const d = describeRelay(state, relayUrl);
    setText("relay-status", d.pill);
    document.body.dataset.relay = state.kind;
    if (d.problem !== undefined) problem(d.problem);
    const up = state.kind === "registered";
    ($("connect-button") as HTMLButtonElement).disabled = !up;
    if (up && !wasRegistered && linked !== undefined && !chat.started) {
      contact(linked).catch(failed); // the bank's link: contact it at once
    } else if (chat.started && up !== wasRegistered) {
      chat.link(up).catch(failed);
    }
    wasRegistered = up;
  };
  relay.start();
  // A bank link opened while the page is already open.
  addEventListener("hashchange", () => {
    const a = fragmentAddress();
    if (a === undefined || chat.started) return;
    ($("peer-address") as HTMLInputElement).value = a;
    if (relay.registered) contact(a).catch(failed);
  });

  $("connect-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    contact(($("peer-address") as HTMLInputElement).value).catch(failed);
  });
}

boot().catch((e) => {
  problem(`The page could not start: ${(e as Error).message}`);
  setText("relay-status", "Stopped");
  console.error(e);
});
