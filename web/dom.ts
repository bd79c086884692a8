/**
 * DOM helpers of the browser client. Text only: every string reaches the
 * page through `textContent` (the CSP's Trusted Types make HTML sinks throw
 * anyway), and text that came from a peer goes through {@link peerText}
 * first.
 * @module
 */

/** The element with `id`; throws when the page lacks it (a build mistake). */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`page has no #${id}`);
  return el as T;
}

/** Creates an element with a class and text (textContent, never HTML). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Sets an element's text. */
export function setText(id: string, text: string): void {
  $(id).textContent = text;
}

/** Offers `text` as a file download named `name`. */
export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Local time of day for a message (HH:MM:SS). */
export function timeOfDay(at: Date): string {
  return at.toLocaleTimeString(undefined, { hour12: false });
}
