// Hostile tokens at the verifier: random authorization values, and valid tokens with characters
// changed, cut or added anywhere (header, payload, signature). Every one that is not the original
// must be refused with UNAUTHENTICATED and a reason; nothing else may come out (no TypeError, no hang).
import { SignJWT } from "jose";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { jwtVerifier, verifyMetadata } from "@grabbit/runtime/auth";
import { runs, tally } from "./support.js";

const SECRET = "hostile-token-secret-of-32-bytes-or-more";
const verify = jwtVerifier({ keys: { secret: SECRET }, audience: "svc", issuer: "iss" });

async function outcome(value: string): Promise<"ok" | "refused"> {
  try {
    await verifyMetadata({ authorization: value }, verify);
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(Code.UNAUTHENTICATED);
    expect((err as StatusError).rawMessage.length).toBeGreaterThan(0);
    return "refused";
  }
}

describe("token verification under hostile input", () => {
  it("random authorization values are refused with UNAUTHENTICATED", async () => {
    const value = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 200 }).map((s) => `Bearer ${s}`),
      fc
        .array(fc.base64String({ maxLength: 60 }), { minLength: 1, maxLength: 5 })
        .map((parts) => `Bearer ${parts.join(".")}`),
      fc
        .jsonValue()
        .map(
          (v) =>
            `Bearer ${Buffer.from(JSON.stringify({ alg: "HS256" })).toString("base64url")}.${Buffer.from(JSON.stringify(v) ?? "").toString("base64url")}.`,
        ),
      fc.integer({ min: 16_000, max: 40_000 }).map((n) => `Bearer ${"a".repeat(n)}`),
    );
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        expect(await outcome(v)).toBe("refused");
        tried++;
      }),
      runs(1000),
    );
    tally("auth random authorization values", tried, { refused: tried });
  });

  it("a valid token changed anywhere is refused; the original passes", async () => {
    const token = await new SignJWT({ scope: "a b" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("s")
      .setIssuer("iss")
      .setAudience("svc")
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(SECRET));
    expect(await outcome(`Bearer ${token}`)).toBe("ok");
    const edit = fc.oneof(
      fc
        .tuple(fc.nat({ max: token.length - 1 }), fc.string({ minLength: 1, maxLength: 1 }))
        .map(([at, c]) => token.slice(0, at) + c + token.slice(at + 1)),
      fc.nat({ max: token.length - 1 }).map((at) => token.slice(0, at)),
      fc
        .tuple(fc.nat({ max: token.length }), fc.string({ minLength: 1, maxLength: 5 }))
        .map(([at, s]) => token.slice(0, at) + s + token.slice(at)),
    );
    let refused = 0;
    let unchanged = 0;
    await fc.assert(
      fc.asyncProperty(edit, async (t) => {
        // Some edits leave the token as it was (same char written back); base64url also has a few
        // spellings of the same bytes in its last character, which a verifier may accept.
        const r = await outcome(`Bearer ${t}`);
        if (t === token) unchanged++;
        else if (r === "ok") expect(decodesToSame(t, token)).toBe(true);
        else refused++;
      }),
      runs(1000),
    );
    tally("auth edited tokens", 1000, {
      refused,
      unchanged,
      sameBytes: 1000 - refused - unchanged,
    });
    expect(refused).toBeGreaterThan(900);
  });
});

/** True when every part of `a` decodes to the same bytes as that part of `b`. */
function decodesToSame(a: string, b: string): boolean {
  const pa = a.split(".");
  const pb = b.split(".");
  return (
    pa.length === pb.length &&
    pa.every((p, i) => Buffer.from(p, "base64url").equals(Buffer.from(pb[i]!, "base64url")))
  );
}
