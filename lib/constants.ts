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
/**
 * Default per-connection sustained rate (frames/s); above it frames are refused with
 * `rate-limited`. High enough for one pipelined end-to-end session (target 25k msgs/s plus ACKs),
 * low enough that one connection cannot take the whole relay (~130k frames/s on 2 cores).
 */
export const DEFAULT_RATE = 50000;
/** Default token-bucket burst (frames) so short bursts of pipelined messages pass. */
export const DEFAULT_BURST = 10000;
/** Default per-recipient send-buffer high-water mark (bytes); above it senders get `peer-busy`. */
export const DEFAULT_HIGH_WATER = 4 * 1024 * 1024;
/** Default maximum simultaneous WebSocket connections. */
export const DEFAULT_MAX_CONNECTIONS = 20000;
/** Default idle timeout (s): a ping at half of it, close when no pong (Deno's `idleTimeout`). */
export const DEFAULT_IDLE_TIMEOUT_S = 60;
/** Default time (ms) an unregistered connection may live: registration is one round trip. */
export const DEFAULT_REGISTER_TIMEOUT_MS = 10000;
/** Default deadline (ms) for a client to complete the TLS handshake after its TCP connection is accepted. */
export const DEFAULT_TLS_TIMEOUT_MS = 10000;
/** Default deadline (ms) for the complete HTTP request head after the TLS handshake (a trickle does not extend it). */
export const DEFAULT_HEADER_TIMEOUT_MS = 10000;
/** Default most connections per client IP that are not registered yet (TLS, HTTP, upgrade, registration stages). */
export const DEFAULT_MAX_UNAUTH_PER_IP = 256;
/** Largest HTTP request head the relay reads (bytes, request line + headers); above it → 431. */
export const MAX_REQUEST_HEAD = 8192;
/** Most header lines the relay accepts in one request; more → 431. */
export const MAX_REQUEST_HEADERS = 64;
/** Time (ms) after a relay-initiated close before the socket is dropped and its slot freed, answered or not. */
export const RELAY_CLOSE_GRACE_MS = 500;
/** Pause (ms) of the accept loop when the process is out of file descriptors (EMFILE/ENFILE). */
export const FD_EXHAUSTED_BACKOFF_MS = 50;
/** Sockets accepted beyond --max-connections (to answer HTTP 503 and health checks) before new ones are closed unanswered. */
export const SOCKET_HEADROOM = 1024;
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
/** Identity algorithm of suite 0x0002 (`<role>_identity_ed25519_keys.json`). */
export const IDENTITY_ALGORITHM_ED25519 = "Ed25519";
/** PBKDF2-SHA256 iterations for a new passphrase-protected key (OWASP 2023 recommendation). */
export const PBKDF2_ITERATIONS = 600_000;
/** Fewest PBKDF2 iterations accepted on load: refuses files downgraded to a cheap-to-guess KDF. */
export const PBKDF2_MIN_ITERATIONS = 100_000;
/** Most PBKDF2 iterations accepted on load: a hostile file must not make loading take minutes. */
export const PBKDF2_MAX_ITERATIONS = 10_000_000;
/** PBKDF2 salt length in bytes (128 bits, NIST SP 800-132 minimum). */
export const PBKDF2_SALT_LENGTH = 16;
/** Largest identity key file read (bytes): real ones are under 1 KiB. */
export const MAX_IDENTITY_FILE_SIZE = 64 * 1024;
/** Largest known-peers file read (bytes): ~380 bytes per peer, so room for MAX_CONVERSATIONS (100,000) peers and more. */
export const MAX_KNOWN_PEERS_FILE_SIZE = 64 * 1024 * 1024;
/** Known-peers file format version written (version 1 is migrated on read). */
export const KNOWN_PEERS_VERSION = 2;
/** Longest wait for the known-peers file lock before an update fails (ms). */
export const KNOWN_PEERS_LOCK_TIMEOUT_MS = 10_000;
/** Most updates applied in one read-modify-write of the known-peers file (group commit; the rest wait for the next). */
export const KNOWN_PEERS_BATCH_MAX = 4096;
/**
 * Most entries kept in the known-peers file: anyone can complete a handshake
 * with a fresh key and become a `new` entry, so the file is bounded (below
 * MAX_KNOWN_PEERS_FILE_SIZE at ~380 bytes per entry; above MAX_CONVERSATIONS).
 */
export const MAX_KNOWN_PEERS = 131_072;
/** Unverified entries forgotten at once (oldest `lastSeen` first) when a new entry would exceed MAX_KNOWN_PEERS. */
export const KNOWN_PEERS_EVICT_BATCH = 8_192;
/** Longest peer name in the known-peers file (characters). */
export const MAX_PEER_NAME_LENGTH = 256;
/** PBKDF2-HMAC-SHA512 iterations of the safety-number half per key (PROTOCOL.md §2.3; ~1.5 ms, one native call). */
export const SAFETY_NUMBER_ITERATIONS = 1024;
/** PBKDF2 output bytes per key: 6 chunks of 5 bytes. */
export const SAFETY_NUMBER_BYTES_PER_KEY = 30;
/** Digits per key in a safety number (Signal: 30, six groups of five). */
export const SAFETY_NUMBER_DIGITS_PER_KEY = 30;

// ── Handshake (lib/handshake.ts, PROTOCOL.md §Handshake) ─────────────────────

/** Version byte of every end-to-end packet (handshake and records); anything else is `unsupported-version`. */
export const E2E_VERSION = 1;
/** Default time (ms) a handshake may take from its start: three messages over a relay need well under a second; 10 s tolerates slow links while bounding how long ephemeral state is held. */
export const HANDSHAKE_TIMEOUT_MS = 10000;
/** Longest identity SPKI accepted in HS2/HS3 (bytes): a P-256 SPKI is 91 bytes; 200 leaves room for a second suite while bounding parsing. */
export const MAX_SPKI_LENGTH = 200;
/** Most suite offers (key shares) in one HS1: bounds the responder's parsing; two suites are defined. */
export const MAX_SUITE_OFFERS = 4;

// ── Session / record layer (lib/session.ts, lib/record.ts, lib/replay_window.ts, lib/padding.ts) ──

/** Packet type byte of a transport RECORD (HS1..HS3 are 0x01..0x03). */
export const RECORD_TYPE = 0x04;
/** RECORD header: version(1) type(1) epoch u32 counter u64. */
export const RECORD_HEADER_LENGTH = 14;
/** Relay DATA header (22 bytes) counted into the padding bucket so whole relay frames are powers of two. */
export const RELAY_DATA_HEADER_LENGTH = 22;
/** Smallest padding bucket (whole relay frame, bytes): every ACK, DUMMY and short DATA looks alike. */
export const MIN_BUCKET = 256;
/** Largest padding bucket (whole relay frame, bytes) = the relay's frame cap. */
export const MAX_BUCKET = 65536;
/** Largest e2e packet (RECORD) that fits a relay frame: 65536 − 22. */
export const MAX_E2E_PACKET = MAX_BUCKET - RELAY_DATA_HEADER_LENGTH;
/** Inner plaintext header: innerType u8 | flags u8 | seq u64 | bodyLen u32. */
export const INNER_HEADER_LENGTH = 14;
/** Bytes of a bucket that are not plaintext: relay header 22 + record header 14 + GCM tag 16. */
export const BUCKET_OVERHEAD = RELAY_DATA_HEADER_LENGTH + RECORD_HEADER_LENGTH +
  16;
/** Frames up to this size (bytes) are padded to a power of two (256, 512, 1024): short messages stay indistinguishable. */
export const FINE_BUCKETS_FROM = 1024;
/** Above FINE_BUCKETS_FROM, buckets are this many equal steps per power of two: a frame is at most 1/16 larger than its content (≤ 1.125 wire bytes per body byte from 1 KiB up), and the relay learns its length to within 1/16 of its power of two. */
export const BUCKET_STEPS_PER_OCTAVE = 16;
/** Coalescing: DATA messages sealed together share one RECORD while their inner plaintext (signatures counted) fits the largest frame (65536 − 52): up to 64 messages of 256 B, 15 of 4 KiB, one of 60 KiB. With 16 steps per octave the padding of a shared record costs at most 1/16. */
export const COALESCE_PLAINTEXT_MAX = MAX_BUCKET - BUCKET_OVERHEAD;
/** Most messages in one RECORD (bounds the receiver's work per authenticated packet). */
export const MAX_MESSAGES_PER_RECORD = 64;
/** Largest application body: room is always left for the 64-byte chain signature. */
export const MAX_BODY = MAX_BUCKET - BUCKET_OVERHEAD - INNER_HEADER_LENGTH - 64;
/** REKEY_INIT / REKEY_RESP body: uncompressed P-256 point (65) ‖ ECDSA P1363 signature (64); any other length is `malformed`. */
export const REKEY_BODY_LENGTH = 65 + 64;
/** Replay bitmap block size in bits (RFC 6479 uses machine words; 32 fits Uint32Array). */
export const REPLAY_BLOCK_BITS = 32;
/** Replay bitmap ring length in blocks: 64 × 32 = 2048 bits. */
export const REPLAY_RING_BLOCKS = 64;
/** Guaranteed replay window: (ring blocks − 1) × block bits = 2016 counters (RFC 6479 §2); ≥ 1024 as required. */
export const REPLAY_WINDOW = (REPLAY_RING_BLOCKS - 1) * REPLAY_BLOCK_BITS;
/** Counters covered by an ACK bitmap (128 bytes). */
export const ACK_BITMAP_BITS = 1024;
/** ACK body: highest u64 ‖ bitmap (ACK_BITMAP_BITS / 8 = 128 bytes) ‖ cumulativeSeq u64; any other length is `malformed`. */
export const ACK_BODY_LENGTH = 8 + ACK_BITMAP_BITS / 8 + 8;
/** Reliable flow window: a reliable or DUMMY packet is sent only while nextCounter − oldest unacked counter < this. Equal to the ACK bitmap span so an ACK can name every packet in flight. */
export const FLOW_WINDOW = ACK_BITMAP_BITS;
/** ACKs may go on while nextCounter − oldest unacked < this, so a retransmission always lands inside the peer's replay window and ACKs never deadlock behind data. */
export const ACK_SEND_LIMIT = REPLAY_WINDOW - 64;
/** Maximum delay (ms) before received reliable messages are acknowledged (coalescing). */
export const ACK_DELAY_MS = 20;
/** Acknowledge at once when this many reliable messages are unacknowledged (1/32 of the flow window). */
export const ACK_EVERY = 32;
/** Default: a chain signature every this many reliable messages (1 = per-message signing). */
export const DEFAULT_SIGN_EVERY = 64;
/** Default: sign (CHECKPOINT) at most this long (ms) after the first unsigned reliable message. */
export const DEFAULT_SIGN_INTERVAL_MS = 1000;
/** Default: under load, chain signatures are at least this many ms apart (a due signature waits for the gap, up to MAX_UNSIGNED − 1 unsigned messages): one ECDSA sign and verify per ~250 messages at 25k msgs/s instead of per 64. */
export const DEFAULT_MIN_SIGN_GAP_MS = 10;
/** Of every this many consecutive reliable messages one carries a chain signature: the sender signs at the latest the MAX_UNSIGNED-th after a signature (at most MAX_UNSIGNED − 1 = 255 unsigned in a row), the receiver fails on the MAX_UNSIGNED-th unsigned one in a row (`unsigned-chain`); bounds what is not yet non-repudiable. */
export const MAX_UNSIGNED = 256;
/** Default rekey after this many packets sent under one epoch (far below AES-GCM's ~2^24.5 record guidance). */
export const DEFAULT_REKEY_AFTER_MESSAGES = 100_000;
/** Default rekey after this long (ms) in one epoch: bounds the exposure of a leaked traffic key. */
export const DEFAULT_REKEY_AFTER_MS = 10 * 60 * 1000;
/** Hard limit of packets under one send key: reliable sends are refused (`window-full`) past it until the rekey completes (TLS 1.3 §5.5: 2^24.5 full records for AES-GCM). */
export const REKEY_HARD_LIMIT_MESSAGES = 2 ** 24;
/** Default last usable counter: 2^64 − 1 − 2^16 (a margin so no arithmetic near the end wraps; the session refuses before). */
export const DEFAULT_MAX_COUNTER = (1n << 64n) - 1n - (1n << 16n);
/** Packets of a not-yet-installed next epoch held while a rekey response is pending (reordering across the switch). */
export const MAX_EPOCH_STASH = 256;

// ── Conversation (lib/conversation.ts, lib/delivery.ts, PROTOCOL.md §2.4/§2.5) ──
// Reliability timers of one conversation above the session. Times in ms.

/** First handshake retransmission (HS1, or HS3 until the responder is heard) after ~this long (jittered: half to all of it). */
export const HANDSHAKE_RETRY_BASE_MS = 500;
/** Handshake retransmissions back off up to this interval; HANDSHAKE_TIMEOUT_MS (10 s) bounds the attempt, so ~5 retransmissions. */
export const HANDSHAKE_RETRY_MAX_MS = 4000;
/** First retransmission of unacknowledged packets after ~this long without an ACK: far above the peer's ACK_DELAY_MS (20 ms) plus a relay round trip. */
export const RETRANSMIT_BASE_MS = 1500;
/** Retransmission interval cap: 1.5 → 3 → 6 → 12 → 15 s. */
export const RETRANSMIT_MAX_MS = 15000;
/** First probe towards a peer the relay reported away (`peer-offline`, `peer-busy`, `rate-limited`). */
export const PEER_PROBE_BASE_MS = 250;
/** Probe interval cap towards an away peer. */
export const PEER_PROBE_MAX_MS = 2000;
/**
 * Retransmission rounds that may go unanswered before the conversation
 * concludes the peer lost the session (it restarted) and starts a new
 * handshake. A round is one firing of the retransmission timer that resends
 * every unacknowledged packet; it is answered when an ACK acknowledging
 * anything new arrives before the next round (any other packet from the
 * peer, such as cover traffic, does not count; a relay `peer-offline` resets
 * the count: an away peer is not a lost session). The round after the
 * third unanswered one starts the handshake instead: with the schedule above
 * after ~1.5 + 3 + 6 + 12 = 22.5 s of silence.
 */
export const REHANDSHAKE_AFTER_UNANSWERED = 3;

/**
 * After this many attempts in a row unanswered (handshakes timed out, sessions
 * replaced for lack of any answer) with a
 * peer we had a session with, the conversation says the peer may be refusing
 * our (changed) identity key: a refusal is not sent on the wire (PROTOCOL.md
 * §2.3). Local hint only, no wire effect.
 */
export const SILENT_HANDSHAKES_HINT = 3;
/**
 * Messages re-queued from an earlier session wait this long for the peer's
 * `resume` (which says what it already delivered) before they are re-sent
 * anyway. Never a duplicate either way: the receiver drops message ids it
 * already delivered (PROTOCOL.md §2.4).
 */
export const RESUME_WAIT_MS = 5000;
/** Records kept while a responder waits for a lost HS3 (they may belong to the session being set up). */
export const MAX_EARLY_RECORDS = 256;
/** Messages sealed per `sendMany` batch. */
export const SEND_BATCH = 64;
/**
 * Records a conversation opens per call at most (lib/conversation.ts): the
 * records that queued up behind a running call are opened in batches of at
 * most this many, so a customer who floods one conversation gets bounded
 * work per turn and the other conversations of the process theirs in
 * between (64 records of 64 messages: 4,096 messages per turn at most).
 */
export const MAX_RECORDS_PER_TURN = 64;
/** Default bound of a conversation's outbox (messages queued, not yet sent or re-queued). */
export const DEFAULT_OUTBOX = 1000;
/** Default time (ms) after which a message sent but not acknowledged is reported `undelivered` (retransmission goes on): above the first four retransmission rounds. */
export const DEFAULT_DELIVER_TIMEOUT_MS = 30000;
/** Messages falling due within this many ms of the oldest one are reported in the same `undelivered` event. */
export const UNDELIVERED_COALESCE_MS = 1000;
/** Default time (ms) allowed for a clean close (flush, acknowledge, CLOSE both ways). */
export const DEFAULT_CLOSE_TIMEOUT_MS = 30000;
/**
 * Responder work per peer relay ID: an HS1 that starts a new handshake costs
 * a key generation, an ECDH and a signature, so each peer ID may start at
 * most this many per second (sustained) …
 */
export const RESPONDER_RATE_PER_PEER = 1;
/** … with this burst (a peer restarting twice in a row still gets through at once). */
export const RESPONDER_BURST_PER_PEER = 4;
/** New conversations (HS1 from an ID without one) accepted per second by one client, over all IDs: bounds what a crowd of strangers costs. */
export const NEW_CONVERSATION_RATE = 500;
/** Burst of new conversations. */
export const NEW_CONVERSATION_BURST = 1000;
/** Most conversations one client holds at once; HS1 from a further unknown ID is ignored. */
export const MAX_CONVERSATIONS = 100_000;
