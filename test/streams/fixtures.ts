// Hand-written services for the stream tests that run a peer in a child process (process death,
// memory), and the way to start that child. Child scripts import this file too, so it may import
// nothing through the vitest aliases: from the runtime only types (erased), never values.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { MessageType, MethodDesc, ServiceDesc } from "@grabbit/runtime";
import { echoMethod, type Echo } from "../amqp-rpc/fixture.js";

/** A service of the three streaming kinds, on a request queue of its own (its full name). */
export type DripService = ServiceDesc<{
  count: MethodDesc<Echo, Echo>;
  sum: MethodDesc<Echo, Echo>;
  chat: MethodDesc<Echo, Echo>;
}>;

export function dripService(typeName: string): DripService {
  return {
    typeName,
    transports: ["amqp"],
    amqp: { requestQueue: typeName, prefetch: 8, queueType: "classic" },
    methods: {
      count: echoMethod(typeName, "Count", "server_streaming"),
      sum: echoMethod(typeName, "Sum", "client_streaming"),
      chat: echoMethod(typeName, "Chat", "bidi_streaming"),
    },
  };
}

export const STREAM_KINDS = ["count", "sum", "chat"] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

/** message Pour { uint32 count = 1; uint32 size = 2; }: send `count` chunks of `size` bytes. */
export interface Pour {
  count: number;
  size: number;
}
/** message Chunk { uint32 seq = 1; bytes data = 2; } */
export interface Chunk {
  seq: number;
  data: Uint8Array;
}

export const PourType: MessageType<Pour> = {
  typeName: "grabbit.test.v1.Pour",
  encode(m) {
    const w = new BinaryWriter();
    if (m.count) w.tag(1, WireType.Varint).uint32(m.count);
    if (m.size) w.tag(2, WireType.Varint).uint32(m.size);
    return w.finish();
  },
  decode(bytes) {
    const r = new BinaryReader(bytes);
    const m: Pour = { count: 0, size: 0 };
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 1 && wireType === WireType.Varint) m.count = r.uint32();
      else if (field === 2 && wireType === WireType.Varint) m.size = r.uint32();
      else r.skip(wireType, field);
    }
    return m;
  },
};

export const ChunkType: MessageType<Chunk> = {
  typeName: "grabbit.test.v1.Chunk",
  encode(m) {
    const w = new BinaryWriter();
    if (m.seq) w.tag(1, WireType.Varint).uint32(m.seq);
    if (m.data.length) w.tag(2, WireType.LengthDelimited).bytes(m.data);
    return w.finish();
  },
  decode(bytes) {
    const r = new BinaryReader(bytes);
    const m: Chunk = { seq: 0, data: new Uint8Array(0) };
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 1 && wireType === WireType.Varint) m.seq = r.uint32();
      else if (field === 2 && wireType === WireType.LengthDelimited) m.data = r.bytes();
      else r.skip(wireType, field);
    }
    return m;
  },
};

export type BlobService = ServiceDesc<{ pour: MethodDesc<Pour, Chunk> }>;

export function blobService(typeName: string): BlobService {
  return {
    typeName,
    transports: ["amqp"],
    amqp: { requestQueue: typeName, prefetch: 1, queueType: "classic" },
    methods: {
      pour: {
        name: "Pour",
        path: `/${typeName}/Pour`,
        kind: "server_streaming",
        input: PourType,
        output: ChunkType,
        idempotent: false,
      },
    },
  };
}

/** The byte every position of chunk `seq` holds, so the reader can tell chunks apart. */
export function fillOf(seq: number): number {
  return seq % 251;
}

const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** A child process the test talks to over IPC: what it sent so far, and a way to wait for more. */
export interface Child {
  readonly proc: ChildProcess;
  readonly messages: Record<string, unknown>[];
  /** The first message (already sent or to come) that `matches`; gives up after `limitMs`. */
  next(
    matches: (m: Record<string, unknown>) => boolean,
    what: string,
    limitMs?: number,
  ): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | string>;
}

/**
 * Runs `script` (a path under the repo) with `node --import tsx`, with `env` added. The child exits
 * by itself when this process goes (its IPC channel disconnects), so a failed run leaves no orphan.
 */
export function startChild(script: string, env: Record<string, string>): Child {
  const proc = fork(script, [], {
    cwd: REPO,
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const messages: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  proc.on("message", (m) => {
    messages.push(m as Record<string, unknown>);
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => resolve(signal ?? code ?? -1)),
  );
  void exited.then(() => {
    for (const w of [...waiters]) w();
  });
  const next = (matches: (m: Record<string, unknown>) => boolean, what: string, limitMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        const found = messages.find(matches);
        const gone = proc.exitCode !== null || proc.signalCode !== null;
        if (found === undefined && !gone) return;
        waiters.delete(check);
        clearTimeout(timer);
        if (found !== undefined) resolve(found);
        else
          reject(
            new Error(
              `the child ${script} exited (${proc.signalCode ?? proc.exitCode}) before sending ${what}`,
            ),
          );
      };
      timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`gave up waiting ${limitMs} ms for the child ${script} to send ${what}`));
      }, limitMs);
      waiters.add(check);
      check();
    });
  return { proc, messages, next, exited };
}
