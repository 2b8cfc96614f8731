// What the broker-free wire specs share: a JSON message type (real bytes, no generated code) and a
// method descriptor of each kind over it.
import type { MessageType, MethodDesc, MethodKind } from "@grabbit/runtime";

export interface Note {
  text: string;
}

/** Encodes as JSON; decoding anything that is not a JSON object with a string `text` throws. */
export const NoteType: MessageType<Note> = {
  typeName: "wire.v1.Note",
  encode: (m) => {
    if (typeof m?.text !== "string") throw new TypeError("text must be a string");
    return new TextEncoder().encode(JSON.stringify(m));
  },
  decode: (bytes) => {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as Note;
    if (typeof value?.text !== "string") throw new TypeError("not a Note");
    return value;
  },
};

export function noteMethod(name: string, kind: MethodKind = "unary"): MethodDesc<Note, Note> {
  return {
    name,
    path: `/wire.v1.Notes/${name}`,
    kind,
    input: NoteType,
    output: NoteType,
    idempotent: false,
  };
}

export const bytesOf = (m: Note): Buffer => Buffer.from(NoteType.encode(m));
