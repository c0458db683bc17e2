import { jwtVerify, SignJWT } from "jose";
import { uuidv7 } from "../lib/ids";

const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
const REFRESH_TOKEN_TTL_SECONDS = 7 * 24 * 60 * 60;

export interface TokenSubject {
  userId: string;
  email: string;
}

export interface AccessClaims extends TokenSubject {
  kind: "access";
}

export interface RefreshClaims extends TokenSubject {
  kind: "refresh";
  tokenId: string;
  familyId: string;
}

function keyOf(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

export async function signAccessToken(secret: string, subject: TokenSubject): Promise<string> {
  return new SignJWT({ email: subject.email, typ: "access" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(subject.userId)
    .setIssuedAt()
    .setJti(uuidv7())
    .setExpirationTime(`${ACCESS_TOKEN_TTL_SECONDS}s`)
    .sign(keyOf(secret));
}

export interface IssuedRefreshToken {
  token: string;
  tokenId: string;
  expiresAt: Date;
}

export async function signRefreshToken(secret: string, subject: TokenSubject, familyId: string): Promise<IssuedRefreshToken> {
  const tokenId = uuidv7();
  const expiresAt = new Date(Date.now() + REFRESH_TOKEN_TTL_SECONDS * 1000);
  const token = await new SignJWT({ email: subject.email, typ: "refresh", fam: familyId })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(subject.userId)
    .setIssuedAt()
    .setJti(tokenId)
    .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
    .sign(keyOf(secret));
  return { token, tokenId, expiresAt };
}

/** Verifies signature, algorithm, expiry (which must be there) and kind; returns null for anything invalid. */
export async function verifyToken(secret: string, token: string): Promise<AccessClaims | RefreshClaims | null> {
  try {
    const { payload } = await jwtVerify(token, keyOf(secret), { algorithms: ["HS256"], requiredClaims: ["exp"] });
    const { sub, email, typ, jti, fam } = payload as Record<string, unknown>;
    if (typeof sub !== "string" || typeof email !== "string") return null;
    if (typ === "access") return { kind: "access", userId: sub, email };
    if (typ === "refresh" && typeof jti === "string" && typeof fam === "string") {
      return { kind: "refresh", userId: sub, email, tokenId: jti, familyId: fam };
    }
    return null;
  } catch {
    return null;
  }
}

export function bearerToken(header: string | undefined): string | null {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1] ?? null;
}
