// The SQL the outbox needs, over two engines with one dialect: PostgreSQL through `pg` (production)
// and PGlite, PostgreSQL compiled to WebAssembly, in-process and persisted to a folder (development:
// no server to run). Both speak the same SQL, so the outbox and idempotency code have one
// implementation and the development store behaves like the production one (SKIP LOCKED included).
//
// Neither driver is a dependency of the runtime: they are optional peers, loaded with a dynamic
// import only when a database is opened from a URL. A service that passes its own pg.Pool or PGlite
// instance needs no import from here at all.

/** Anything that runs a parameterised query: a pg Pool or PoolClient, a PGlite instance or its transaction. */
export interface SqlClient {
  query(text: string, params?: unknown[]): Promise<{ rows: any[] }>;
}

/** A database the outbox and the idempotency helper can use. */
export interface Database extends SqlClient {
  readonly kind: "postgres" | "pglite";
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  /** Ends the pool or closes the embedded database, when this object opened it. */
  close(): Promise<void>;
}

/** The part of a `pg.Pool` used here. */
export interface PgPoolLike extends SqlClient {
  connect(): Promise<SqlClient & { release(err?: Error | boolean): void }>;
  end?(): Promise<void>;
}

/** The part of a PGlite instance used here. */
export interface PgliteLike extends SqlClient {
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close?(): Promise<void>;
}

/** Wraps a pg Pool. `close()` ends the pool only when `ownsPool` is set. */
export function postgresDatabase(pool: PgPoolLike, options: { ownsPool?: boolean } = {}): Database {
  return {
    kind: "postgres",
    query: (text, params) => pool.query(text, params),
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const result = await fn(client);
        await client.query("COMMIT");
        client.release();
        return result;
      } catch (err) {
        try {
          await client.query("ROLLBACK");
          client.release();
        } catch (rollbackErr) {
          // The connection is broken: destroy it instead of handing it to the next caller.
          client.release(rollbackErr instanceof Error ? rollbackErr : true);
        }
        throw err;
      }
    },
    async close() {
      if (options.ownsPool) await pool.end?.();
    },
  };
}

/** Wraps a PGlite instance. `close()` closes it only when `ownsDb` is set. */
export function pgliteDatabase(db: PgliteLike, options: { ownsDb?: boolean } = {}): Database {
  return {
    kind: "pglite",
    query: (text, params) => db.query(text, params),
    transaction: (fn) => db.transaction(fn),
    async close() {
      if (options.ownsDb) await db.close?.();
    },
  };
}

/** Where embedded databases live by default, relative to the working directory. */
export const DEFAULT_EMBEDDED_DIR = ".grabbit/db";

/**
 * Opens a database from a URL:
 * - `postgres://...` or `postgresql://...`: a pg Pool (needs the `pg` package);
 * - `file:<dir>` or a plain folder path: PGlite persisted to that folder (needs `@electric-sql/pglite`);
 * - `memory:`: PGlite in memory (tests; lost on exit);
 * - nothing: PGlite in `.grabbit/db`, the development default.
 */
export async function openDatabase(
  url: string | undefined = process.env.GRABBIT_DATABASE_URL,
  options: { poolSize?: number } = {},
): Promise<Database> {
  const target = url ?? DEFAULT_EMBEDDED_DIR;
  if (/^postgres(ql)?:\/\//.test(target)) {
    const pg = await optionalImport("pg", "PostgreSQL");
    const Pool = (pg.default ?? pg).Pool;
    const pool = new Pool({ connectionString: target, max: options.poolSize ?? 10 });
    // An idle client that loses its server emits 'error' on the pool; without a listener it would crash the process.
    pool.on("error", () => {});
    return postgresDatabase(pool, { ownsPool: true });
  }
  const mod = await optionalImport("@electric-sql/pglite", "the embedded database");
  const dir =
    target === "memory:"
      ? undefined
      : target.startsWith("file:")
        ? target.slice("file:".length)
        : target;
  const db = await mod.PGlite.create(dir);
  return pgliteDatabase(db, { ownsDb: true });
}

async function optionalImport(name: string, what: string): Promise<any> {
  try {
    // A specifier in a variable: bundlers and tsc leave it alone, so the package stays optional.
    const specifier: string = name;
    return await import(specifier);
  } catch (err) {
    throw new Error(`${what} needs the optional package "${name}": npm install ${name}`, {
      cause: err,
    });
  }
}

/** Checks a table name (optionally schema-qualified) so it can go into SQL text. */
export function tableName(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,50}(\.[A-Za-z_][A-Za-z0-9_]{0,50})?$/.test(name)) {
    throw new TypeError(
      `invalid table name ${JSON.stringify(name)}: letters, digits and underscores, optionally schema.table`,
    );
  }
  return name;
}
