// Service rules: services paired by full name, RPCs by name.
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { methodsOf, type ServiceEl } from "../model.js";
import { Ctx, stripDot } from "./context.js";

const IDEMPOTENCY = ["IDEMPOTENCY_UNKNOWN", "NO_SIDE_EFFECTS", "IDEMPOTENT"];

export function checkServices(ctx: Ctx): void {
  for (const [name, after] of ctx.cur.services) {
    const before = ctx.old.services.get(name);
    if (before) compareService(ctx, before, after);
  }
}

function compareService(ctx: Ctx, before: ServiceEl, after: ServiceEl): void {
  const at = { file: after.file, spath: after.spath };
  const mb = methodsOf(before);
  const ma = methodsOf(after);
  for (const [name] of mb) {
    if (!ma.has(name))
      ctx.add(
        "RPC_NO_DELETE",
        at,
        `Previously present RPC "${name}" on service "${after.local}" was deleted.`,
        { subject: `rpc:${after.fullName}.${name}` },
      );
  }
  for (const [name, a] of ma) {
    const b = mb.get(name);
    if (!b) {
      ctx.change("RPC_ADDED", a, `RPC "${name}" was added to service "${after.local}".`, {
        subject: `rpc-added:${a.fullName}`,
      });
      continue;
    }
    const rpc = `RPC "${name}" on service "${after.local}"`;
    const streaming = (v: boolean, kind: string) => (v ? `${kind} streaming` : `${kind} unary`);
    if (b.d.clientStreaming !== a.d.clientStreaming) {
      ctx.add(
        "RPC_SAME_CLIENT_STREAMING",
        a,
        `${rpc} changed from ${streaming(b.d.clientStreaming, "client")} to ${streaming(a.d.clientStreaming, "client")}.`,
        {},
      );
    }
    if (b.d.serverStreaming !== a.d.serverStreaming) {
      ctx.add(
        "RPC_SAME_SERVER_STREAMING",
        a,
        `${rpc} changed from ${streaming(b.d.serverStreaming, "server")} to ${streaming(a.d.serverStreaming, "server")}.`,
        {},
      );
    }
    if (b.d.inputType !== a.d.inputType) {
      ctx.add(
        "RPC_SAME_REQUEST_TYPE",
        a,
        `${rpc} changed request type from "${stripDot(b.d.inputType)}" to "${stripDot(a.d.inputType)}".`,
        { sub: [2] },
      );
    }
    if (b.d.outputType !== a.d.outputType) {
      ctx.add(
        "RPC_SAME_RESPONSE_TYPE",
        a,
        `${rpc} changed response type from "${stripDot(b.d.outputType)}" to "${stripDot(a.d.outputType)}".`,
        { sub: [3] },
      );
    }
    const ib = b.d.options?.idempotencyLevel ?? MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
    const ia = a.d.options?.idempotencyLevel ?? MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
    // buf points at the option, and at 1:1 when the RPC no longer sets it (not at the RPC).
    if (ib !== ia) {
      ctx.add(
        "RPC_SAME_IDEMPOTENCY_LEVEL",
        a,
        `${rpc} changed option "idempotency_level" from "${IDEMPOTENCY[ib]}" to "${IDEMPOTENCY[ia]}".`,
        { sub: [4, 34], subOnly: true },
      );
    }
  }
}
