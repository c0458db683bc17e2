import { createRoute, z } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import { generateApiKey } from "../auth/api-keys";
import { DUMMY_PASSWORD_HASH, hashPassword, verifyPassword } from "../auth/password";
import { bearerToken, signAccessToken, signRefreshToken, verifyToken, type TokenSubject } from "../auth/tokens";
import { violatesUnique, type Database } from "../db/client";
import { apiKeys, businesses, projects, refreshTokens, users } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { noStore } from "../lib/no-store";
import { createRouter, errorResponses, jsonBody, jsonContent } from "../lib/openapi";
import { countLoginAttempt } from "../limits/rate-limit";

const requiredText = (max: number) => z.string().trim().min(1, "is required").max(max);

const SignupBody = z
  .object({
    email: z.email("must be an email address").max(254).transform((e) => e.toLowerCase()),
    password: z.string().min(8, "must be at least 8 characters").max(256),
    first_name: requiredText(100),
    last_name: requiredText(100),
    business_name: requiredText(200),
    business_summary: requiredText(2000),
    industry: requiredText(200),
  })
  .openapi("SignupRequest");

const LoginBody = z
  .object({
    email: z.email("must be an email address").transform((e) => e.toLowerCase()),
    password: z.string().min(1, "is required"),
  })
  .openapi("LoginRequest");

const UserSchema = z.object({ id: z.string(), email: z.string(), first_name: z.string(), last_name: z.string() }).openapi("User");

const TokensSchema = z
  .object({ access_token: z.string(), refresh_token: z.string(), user: UserSchema })
  .openapi("Tokens");

const SignupResponse = TokensSchema.extend({
  business: z.object({ id: z.string(), name: z.string() }),
  default_project: z.object({ id: z.string(), name: z.string(), api_key: z.string().openapi({ description: "Shown once; only its hash is stored" }) }),
}).openapi("SignupResponse");

const signupRoute = createRoute({
  method: "post",
  path: "/signup",
  tags: ["Auth"],
  summary: "Create an account: business, default project and first API key",
  request: { body: jsonBody(SignupBody) },
  responses: { 201: jsonContent(SignupResponse, "Account created"), ...errorResponses(400, 409) },
});

const loginRoute = createRoute({
  method: "post",
  path: "/login",
  tags: ["Auth"],
  summary: "Exchange email and password for tokens",
  request: { body: jsonBody(LoginBody) },
  responses: { 200: jsonContent(TokensSchema, "Logged in"), ...errorResponses(400, 401) },
});

const refreshRoute = createRoute({
  method: "post",
  path: "/refresh",
  tags: ["Auth"],
  summary: "Rotate a refresh token (Authorization: Bearer <refresh_token>)",
  description: "Each refresh token works once. Presenting a used one revokes every token descended from the same login.",
  responses: { 201: jsonContent(TokensSchema, "New token pair"), ...errorResponses(401) },
});

interface UserRow {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
}

function userBody(user: UserRow) {
  return { id: user.id, email: user.email, first_name: user.firstName, last_name: user.lastName };
}

async function issueTokens(db: Database, secret: string, user: UserRow, familyId: string = uuidv7()) {
  const subject: TokenSubject = { userId: user.id, email: user.email };
  const accessToken = await signAccessToken(secret, subject);
  const refresh = await signRefreshToken(secret, subject, familyId);
  const now = nowIso();
  const insert = db.insert(refreshTokens).values({
    id: refresh.tokenId,
    userId: user.id,
    familyId,
    status: "active",
    expiresAt: refresh.expiresAt.toISOString(),
    createdAt: now,
    updatedAt: now,
  });
  return { accessToken, refreshToken: refresh.token, insert };
}

const emailTaken = () => new ApiError("email_taken", "An account with this email already exists");

export const authRoutes = createRouter()
  .openapi(signupRoute, async (c) => {
    const body = c.req.valid("json");
    const { db, config } = c.var;
    // Checked first to spare a taken email the password hashing; the unique index still decides.
    const [existing] = await db.select({ id: users.id }).from(users).where(eq(users.email, body.email)).limit(1);
    if (existing) throw emailTaken();

    const now = nowIso();
    const businessId = uuidv7();
    const projectId = uuidv7();
    const user: UserRow = { id: uuidv7(), email: body.email, firstName: body.first_name, lastName: body.last_name };
    const apiKey = await generateApiKey();
    const passwordHash = await hashPassword(body.password);
    const tokens = await issueTokens(db, config.jwtSecret, user);
    const timestamps = { createdAt: now, updatedAt: now };
    try {
      await db.batch([
        db.insert(businesses).values({ id: businessId, name: body.business_name, summary: body.business_summary, industry: body.industry, defaultProjectId: projectId, ...timestamps }),
        db.insert(projects).values({ id: projectId, businessId, name: "default", ...timestamps }),
        db.insert(users).values({ ...user, businessId, passwordHash, ...timestamps }),
        db.insert(apiKeys).values({ id: uuidv7(), projectId, name: "default", keyHash: apiKey.keyHash, keyPrefix: apiKey.keyPrefix, status: "active", ...timestamps }),
        tokens.insert,
      ]);
    } catch (err) {
      // Two signups racing for one email.
      if (violatesUnique(err, "users.email")) throw emailTaken();
      throw err;
    }
    noStore(c);
    return c.json(
      {
        access_token: tokens.accessToken,
        refresh_token: tokens.refreshToken,
        user: userBody(user),
        business: { id: businessId, name: body.business_name },
        default_project: { id: projectId, name: "default", api_key: apiKey.key },
      },
      201,
    );
  })
  .openapi(loginRoute, async (c) => {
    const { email, password } = c.req.valid("json");
    const { db, config } = c.var;
    // Before the lookup and the PBKDF2: a locked account costs neither.
    const attempt = await countLoginAttempt(c, email);
    const [user] = await db.select().from(users).where(eq(users.email, email)).limit(1);
    const passwordOk = await verifyPassword(password, user?.passwordHash ?? DUMMY_PASSWORD_HASH);
    if (!user || !passwordOk) {
      attempt.failed();
      throw new ApiError("invalid_credentials", "Invalid email or password");
    }
    await attempt.succeeded();
    const tokens = await issueTokens(db, config.jwtSecret, user);
    await tokens.insert;
    noStore(c);
    return c.json({ access_token: tokens.accessToken, refresh_token: tokens.refreshToken, user: userBody(user) }, 200);
  })
  .openapi(refreshRoute, async (c) => {
    const { db, config } = c.var;
    const token = bearerToken(c.req.header("authorization"));
    const claims = token ? await verifyToken(config.jwtSecret, token) : null;
    if (!claims || claims.kind !== "refresh") throw new ApiError("invalid_refresh_token", "Invalid or expired refresh token");

    const now = nowIso();
    const [[consumed], [user]] = await db.batch([
      db
        .update(refreshTokens)
        .set({ status: "used", updatedAt: now })
        .where(and(eq(refreshTokens.id, claims.tokenId), eq(refreshTokens.userId, claims.userId), eq(refreshTokens.status, "active")))
        .returning({ familyId: refreshTokens.familyId }),
      db.select().from(users).where(eq(users.id, claims.userId)).limit(1),
    ]);
    if (!consumed) {
      // A used or revoked token presented again means it leaked: end the whole login.
      await db.update(refreshTokens).set({ status: "revoked", updatedAt: now }).where(eq(refreshTokens.familyId, claims.familyId));
      throw new ApiError("refresh_token_reused", "Refresh token already used; every token of this login has been revoked");
    }
    if (!user) throw new ApiError("invalid_refresh_token", "Invalid or expired refresh token");
    const tokens = await issueTokens(db, config.jwtSecret, user, consumed.familyId);
    await tokens.insert;
    noStore(c);
    return c.json({ access_token: tokens.accessToken, refresh_token: tokens.refreshToken, user: userBody(user) }, 201);
  });
