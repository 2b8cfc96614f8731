// Identity: bearer tokens sent by client interceptors and JWTs verified by server interceptors, the
// same on gRPC, RPC over RabbitMQ and events. See docs/security.md.
export {
  AUTHORIZATION,
  MAX_TOKEN_CHARS,
  bearerToken,
  bearerFrom,
  type BearerTokenOptions,
  type TokenSource,
} from "./bearer.js";
export {
  JWT_CLAIMS,
  claimsOf,
  jwtVerifier,
  requireJwt,
  verifyMetadata,
  type JwtClaims,
  type JwtKeys,
  type JwtVerifier,
  type JwtVerifierOptions,
  type RequireJwtOptions,
} from "./jwt.js";
