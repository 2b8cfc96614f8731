// Transactional outbox and idempotent consumers ("@grabbit/runtime/outbox"). PostgreSQL (`pg`) and
// the embedded PGlite store are optional peer dependencies, loaded only when used.
export {
  type SqlClient,
  type Database,
  type PgPoolLike,
  type PgliteLike,
  postgresDatabase,
  pgliteDatabase,
  openDatabase,
  DEFAULT_EMBEDDED_DIR,
} from "./database.js";
export {
  Outbox,
  partitionOf,
  type OutboxOptions,
  type OutboxAddOptions,
  type OutboxCounts,
} from "./outbox.js";
export { OutboxRelay, type OutboxRelayOptions, type OutboxRelayStats } from "./relay.js";
export {
  idempotent,
  installIdempotency,
  purgeProcessed,
  type IdempotencyOptions,
  type TransactionalHandler,
} from "./idempotent.js";
