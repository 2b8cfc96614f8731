// TLS credentials from PEM text, for servers and clients that keep certificates in config or secrets
// rather than in files.

import * as grpc from "@grpc/grpc-js";

type Pem = string | Buffer;

function pem(value: Pem | undefined): Buffer | null {
  if (value === undefined) return null;
  return typeof value === "string" ? Buffer.from(value) : value;
}

/**
 * Client credentials. `ca` trusts a private CA (else the system roots); `cert` and `key` present a
 * client certificate for mutual TLS.
 */
export function tlsChannelCredentials(
  options: { ca?: Pem; cert?: Pem; key?: Pem } = {},
): grpc.ChannelCredentials {
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new Error("tlsChannelCredentials: a client certificate needs both cert and key");
  }
  return grpc.credentials.createSsl(pem(options.ca), pem(options.key), pem(options.cert));
}

/**
 * Server credentials. With `requireClientCert` (mutual TLS) clients must present a certificate signed
 * by `ca`, which is then required.
 */
export function tlsServerCredentials(options: {
  cert: Pem;
  key: Pem;
  ca?: Pem;
  requireClientCert?: boolean;
}): grpc.ServerCredentials {
  if (options.requireClientCert && options.ca === undefined) {
    throw new Error(
      "tlsServerCredentials: requireClientCert needs the ca that signs client certificates",
    );
  }
  return grpc.ServerCredentials.createSsl(
    pem(options.ca),
    [{ cert_chain: pem(options.cert)!, private_key: pem(options.key)! }],
    options.requireClientCert ?? false,
  );
}
