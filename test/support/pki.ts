// Certificates made with `openssl` for one test run (EC P-256, valid two days) in a folder of their
// own: certificate authorities, and server or client certificates each signed by one of them.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export interface IssueOptions {
  /** Common name of the certificate's subject. */
  cn: string;
  /** The CA (its file stem, as given to `ca()`) that signs it. */
  ca: string;
  usage: "serverAuth" | "clientAuth";
  /** subjectAltName entries, e.g. ["DNS:localhost", "IP:127.0.0.1"] (server certificates). */
  altNames?: string[];
}

export class TestPki {
  readonly dir: string;

  constructor(prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  }

  /** A self-signed CA: `<stem>.crt` and `<stem>.key`. */
  ca(stem: string, cn: string): this {
    this.ssl(
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      `${stem}.key`,
      "-out",
      `${stem}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
    );
    return this;
  }

  /** `<stem>.crt` and `<stem>.key`, signed by the CA `o.ca`. */
  issue(stem: string, o: IssueOptions): this {
    const ext = [
      o.altNames?.length ? `subjectAltName=${o.altNames.join(",")}` : "",
      `extendedKeyUsage=${o.usage}`,
    ]
      .filter(Boolean)
      .join("\n");
    writeFileSync(join(this.dir, `${stem}.ext`), `${ext}\n`);
    this.ssl(
      "req",
      ...EC_KEY,
      "-keyout",
      `${stem}.key`,
      "-out",
      `${stem}.csr`,
      "-subj",
      `/CN=${o.cn}`,
    );
    this.ssl(
      "x509",
      "-req",
      "-in",
      `${stem}.csr`,
      "-CA",
      `${o.ca}.crt`,
      "-CAkey",
      `${o.ca}.key`,
      "-CAcreateserial",
      "-days",
      "2",
      "-out",
      `${stem}.crt`,
      "-extfile",
      `${stem}.ext`,
    );
    return this;
  }

  /** A file of the folder as text (PEM). */
  pem(file: string): string {
    return readFileSync(join(this.dir, file), "utf8");
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private ssl(...args: string[]): void {
    execFileSync("openssl", args, { cwd: this.dir, stdio: "pipe" });
  }
}
