/**
 * Every protocol limit and timer in one place, each with its rationale, so
 * the security parameters can be reviewed on one screen (after
 * wireguard-go's `device/constants.go`). Sections are per layer.
 * @module
 */

// ── Relay layer (PROTOCOL.md §1) ───────────────────────────────────────────

/** Relay wire version byte; anything else is refused with `unsupported-version`. */
export const RELAY_VERSION = 1;
/** WebSocket subprotocol a client must offer. */
export const RELAY_SUBPROTOCOL = "relay.v1";
/** Length of a relay session ID: 16 bytes = 128 bits, collision-safe for any realistic population. */
export const SESSION_ID_LENGTH = 16;
/** Length of the registration challenge (256 bits of fresh randomness per connection). */
export const CHALLENGE_LENGTH = 32;
/** Ed25519 raw public key length (mailbox key). */
export const MAILBOX_KEY_LENGTH = 32;
/** Ed25519 signature length. */
export const MAILBOX_SIGNATURE_LENGTH = 64;
/** DATA header: version(1) type(1) peer(16) frame number(4). */
export const DATA_HEADER_LENGTH = 2 + SESSION_ID_LENGTH + 4;
/** ERROR header: version(1) type(1) code(2) peer(16) frame number(4), then a short UTF-8 reason. */
export const ERROR_HEADER_LENGTH = 2 + 2 + SESSION_ID_LENGTH + 4;
/** Longest error reason the relay sends (bytes); keeps error frames small. */
export const MAX_ERROR_REASON = 120;
/** Default largest relay frame (bytes, header included): 64 KiB, far below Deno's 64 MiB buffer. */
export const DEFAULT_MAX_FRAME = 65536;
/** Default per-connection sustained rate (frames/s); above it frames are refused with `rate-limited`. */
export const DEFAULT_RATE = 20000;
/** Default token-bucket burst (frames) so short bursts of pipelined messages pass. */
export const DEFAULT_BURST = 4000;
/** Default per-recipient send-buffer high-water mark (bytes); above it senders get `peer-busy`. */
export const DEFAULT_HIGH_WATER = 4 * 1024 * 1024;
/** Default maximum simultaneous WebSocket connections. */
export const DEFAULT_MAX_CONNECTIONS = 20000;
/** Default idle timeout (s): a ping at half of it, close when no pong (Deno's `idleTimeout`). */
export const DEFAULT_IDLE_TIMEOUT_S = 60;
/** Default time (ms) an unregistered connection may live: registration is one round trip. */
export const DEFAULT_REGISTER_TIMEOUT_MS = 10000;
/** Protocol errors tolerated per connection within ABUSE_WINDOW_MS before it is closed with 1008. */
export const ABUSE_LIMIT = 32;
/** Window (ms) over which protocol errors are counted for the abuse limit. */
export const ABUSE_WINDOW_MS = 10000;
/** Default relay port. */
export const DEFAULT_PORT = 8765;

// ── Identities, fingerprints, known peers (lib/identity.ts, lib/fingerprint.ts, lib/known_peers.ts) ──

/** Identity key file format version; any other value is refused. */
export const IDENTITY_FILE_VERSION = 1;
/** Algorithm name written in identity key files: ECDSA on P-256 with SHA-256. */
export const IDENTITY_ALGORITHM = "ECDSA-P256-SHA256";
/** PBKDF2-SHA256 iterations for a new passphrase-protected key (OWASP 2023 recommendation). */
export const PBKDF2_ITERATIONS = 600_000;
/** Fewest PBKDF2 iterations accepted on load: refuses files downgraded to a cheap-to-guess KDF. */
export const PBKDF2_MIN_ITERATIONS = 100_000;
/** Most PBKDF2 iterations accepted on load: a hostile file must not make loading take minutes. */
export const PBKDF2_MAX_ITERATIONS = 10_000_000;
/** PBKDF2 salt length in bytes (128 bits, NIST SP 800-132 minimum). */
export const PBKDF2_SALT_LENGTH = 16;
/** Largest identity or known-peers file read (bytes): real ones are < 1 KiB / a few KiB per 10 peers. */
export const MAX_IDENTITY_FILE_SIZE = 64 * 1024;
/** Largest known-peers file read (bytes): ~200 bytes per peer, so room for thousands. */
export const MAX_KNOWN_PEERS_FILE_SIZE = 4 * 1024 * 1024;
/** Known-peers file format version. */
export const KNOWN_PEERS_VERSION = 1;
/** Longest peer name in the known-peers file (characters). */
export const MAX_PEER_NAME_LENGTH = 256;
/** Iterations of the safety-number hash per key, as Signal's NumericFingerprint (slows collision search). */
export const SAFETY_NUMBER_ITERATIONS = 5200;
/** Digits per key in a safety number (Signal: 30, six groups of five). */
export const SAFETY_NUMBER_DIGITS_PER_KEY = 30;

// ── Handshake (lib/handshake.ts, PROTOCOL.md §Handshake) ─────────────────────

/** Version byte of every end-to-end packet (handshake and records); anything else is `unsupported-version`. */
export const E2E_VERSION = 1;
/** Default time (ms) a handshake may take from its start: three messages over a relay need well under a second; 10 s tolerates slow links while bounding how long ephemeral state is held. */
export const HANDSHAKE_TIMEOUT_MS = 10000;
/** Longest identity SPKI accepted in HS2/HS3 (bytes): a P-256 SPKI is 91 bytes; 200 leaves room for a second suite while bounding parsing. */
export const MAX_SPKI_LENGTH = 200;
