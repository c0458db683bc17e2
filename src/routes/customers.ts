import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, inArray } from "drizzle-orm";
import { violatesUnique, type Database } from "../db/client";
import { customerPhones, customers } from "../db/schema";
import { ApiError } from "../errors";
import { nowIso, uuidv7 } from "../lib/ids";
import { apiKeySecurity, atLeastOneField, createRouter, E164Field, errorResponses, IdParam, jsonBody, jsonContent } from "../lib/openapi";
import { afterCursor, PaginationQuery, pageWithCursorHeader } from "../lib/pagination";
import { TimeZoneSchema } from "../calls/calling-hours";
import { CONSENT_TYPES, PHONE_STATUSES } from "../calls/call";

const METADATA_MAX_BYTES = 16 * 1024;

const MetadataField = z
  .record(z.string(), z.unknown())
  .refine((metadata) => new TextEncoder().encode(JSON.stringify(metadata)).length <= METADATA_MAX_BYTES, "must be at most 16 KB serialized")
  .openapi({ description: "Your own JSON object, at most 16 KB", example: { plan: "pro" } });

const customerFields = {
  external_id: z.string().trim().min(1, "is required").max(255).openapi({ description: "Your system's id for the customer, unique in the project", example: "user_12345" }),
  first_name: z.string().trim().min(1, "is required").max(100),
  last_name: z.string().trim().min(1, "is required").max(100),
};

const TimeZoneField = TimeZoneSchema.openapi({
  description: "The customer's IANA time zone: calling hours are read in it instead of the phone number's zone(s)",
  example: "America/New_York",
});

/** Clock skew allowed for an `obtained_at` that is "now" on the client's clock. */
const CONSENT_CLOCK_SKEW_MS = 5 * 60_000;

const ConsentField = z
  .strictObject({
    type: z.enum(CONSENT_TYPES),
    obtained_at: z.iso
      .datetime({ offset: true, message: "must be an ISO 8601 date and time with an offset, e.g. 2026-11-02T14:05:00Z" })
      .refine((at) => Date.parse(at) <= Date.now() + CONSENT_CLOCK_SKEW_MS, "must not be in the future"),
    source: z.string().trim().min(1, "is required").max(500).openapi({ description: "Where the consent was obtained, e.g. a form's URL or a contract's reference" }),
  })
  .openapi("Consent", {
    description: "How the customer agreed to be called; stored as given and included in call.summary",
    example: { type: "express_written", obtained_at: "2026-11-02T14:05:00Z", source: "https://example.com/signup#sms-voice-consent" },
  });

const CreateCustomerBody = z
  .object({ ...customerFields, phone: E164Field, metadata: MetadataField.default({}), timezone: TimeZoneField.optional(), consent: ConsentField.optional() })
  .openapi("CreateCustomerRequest");

const UpdateCustomerBody = z
  .object({
    external_id: customerFields.external_id.optional(),
    first_name: customerFields.first_name.optional(),
    last_name: customerFields.last_name.optional(),
    metadata: MetadataField.optional().openapi({ description: "Replaces the whole metadata object" }),
    timezone: TimeZoneField.nullable().optional().openapi({ description: "The customer's IANA time zone; null clears it (the phone number's zone(s) apply)" }),
    consent: ConsentField.nullable().optional().openapi({ description: "Replaces the consent record; null clears it" }),
  })
  .refine(atLeastOneField, "provide at least one field")
  .openapi("UpdateCustomerRequest");

const PhoneStatus = z.enum(PHONE_STATUSES);

const AddPhoneBody = z
  .object({
    value: E164Field,
    is_primary: z.boolean().default(false).openapi({ description: "Make this the number calls go to; the others stop being primary" }),
  })
  .openapi("AddPhoneRequest");

const UpdatePhoneBody = z
  .object({
    is_primary: z.boolean().optional().openapi({ description: "true makes this the primary phone; to move primary elsewhere, set it on the other phone" }),
    status: PhoneStatus.optional(),
  })
  .refine(atLeastOneField, "provide at least one field")
  .openapi("UpdatePhoneRequest");

const PhoneSchema = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    value: z.string(),
    is_primary: z.boolean(),
    status: PhoneStatus,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("CustomerPhone");

const CustomerSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    external_id: z.string(),
    first_name: z.string(),
    last_name: z.string(),
    metadata: z.record(z.string(), z.unknown()),
    timezone: z.string().nullable().openapi({ description: "IANA time zone for calling hours; null: the phone number's zone(s)" }),
    consent: ConsentField.nullable().openapi({ description: "How the customer agreed to be called; null: not recorded" }),
    phones: z.array(PhoneSchema).openapi({ description: "Primary first, then oldest first" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Customer");

type CustomerRow = typeof customers.$inferSelect;
type PhoneRow = typeof customerPhones.$inferSelect;

function phoneBody(row: PhoneRow) {
  return {
    id: row.id,
    customer_id: row.customerId,
    value: row.value,
    is_primary: row.isPrimary,
    status: row.status,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

function customerBody(row: CustomerRow, phones: PhoneRow[]) {
  return {
    id: row.id,
    project_id: row.projectId,
    external_id: row.externalId,
    first_name: row.firstName,
    last_name: row.lastName,
    metadata: row.metadata,
    timezone: row.timezone,
    consent: row.consent ?? null,
    phones: phones.map(phoneBody),
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

const phoneOrder = [desc(customerPhones.isPrimary), asc(customerPhones.id)];

function phonesQuery(db: Database, projectId: string, customerId: string) {
  return db
    .select()
    .from(customerPhones)
    .where(and(eq(customerPhones.customerId, customerId), eq(customerPhones.projectId, projectId)))
    .orderBy(...phoneOrder);
}

/** Batched with the reads that depend on it, so a request makes one round trip to D1; check it with `found`. */
function customerQuery(db: Database, projectId: string, id: string) {
  return db
    .select()
    .from(customers)
    .where(and(eq(customers.id, id), eq(customers.projectId, projectId)))
    .limit(1);
}

function found(rows: CustomerRow[]): CustomerRow {
  const [row] = rows;
  if (!row) throw new ApiError("customer_not_found", "Customer not found");
  return row;
}

const customerExists = (externalId: string) => new ApiError("customer_exists", `A customer with external_id "${externalId}" already exists in this project`);
const phoneExists = (value: string) => new ApiError("phone_exists", `The customer already has the phone ${value}`);

const EXTERNAL_ID_INDEX = "customers.project_id, customers.external_id";
const PHONE_VALUE_INDEX = "customer_phones.customer_id, customer_phones.value";

const CustomerIdParam = IdParam("id");
const PhoneParams = CustomerIdParam.extend(IdParam("phoneId").shape);

const createCustomerRoute = createRoute({
  method: "post",
  path: "/customers",
  tags: ["Customers"],
  summary: "Create a customer with a primary phone",
  security: apiKeySecurity,
  request: { body: jsonBody(CreateCustomerBody) },
  responses: { 201: jsonContent(CustomerSchema, "Customer created"), ...errorResponses(400, 401, 409) },
});

const listCustomersRoute = createRoute({
  method: "get",
  path: "/customers",
  tags: ["Customers"],
  summary: "List the project's customers",
  security: apiKeySecurity,
  request: { query: PaginationQuery.extend({ external_id: z.string().optional().openapi({ description: "Only the customer with this external_id" }) }) },
  responses: { 200: jsonContent(z.array(CustomerSchema), "Customers, newest first; next page cursor in X-Next-Cursor"), ...errorResponses(400, 401) },
});

const getCustomerRoute = createRoute({
  method: "get",
  path: "/customers/{id}",
  tags: ["Customers"],
  summary: "Get a customer",
  security: apiKeySecurity,
  request: { params: CustomerIdParam },
  responses: { 200: jsonContent(CustomerSchema, "The customer"), ...errorResponses(401, 404) },
});

const updateCustomerRoute = createRoute({
  method: "patch",
  path: "/customers/{id}",
  tags: ["Customers"],
  summary: "Update a customer; fields left out keep their value",
  security: apiKeySecurity,
  request: { params: CustomerIdParam, body: jsonBody(UpdateCustomerBody) },
  responses: { 200: jsonContent(CustomerSchema, "The updated customer"), ...errorResponses(400, 401, 404, 409) },
});

const deleteCustomerRoute = createRoute({
  method: "delete",
  path: "/customers/{id}",
  tags: ["Customers"],
  summary: "Delete a customer and its phones; its notifications stay",
  security: apiKeySecurity,
  request: { params: CustomerIdParam },
  responses: { 204: { description: "Deleted" }, ...errorResponses(401, 404) },
});

const addPhoneRoute = createRoute({
  method: "post",
  path: "/customers/{id}/phones",
  tags: ["Customers"],
  summary: "Add a phone to a customer",
  security: apiKeySecurity,
  request: { params: CustomerIdParam, body: jsonBody(AddPhoneBody) },
  responses: { 201: jsonContent(PhoneSchema, "Phone added"), ...errorResponses(400, 401, 404, 409) },
});

const updatePhoneRoute = createRoute({
  method: "patch",
  path: "/customers/{id}/phones/{phoneId}",
  tags: ["Customers"],
  summary: "Make a phone primary or change its status",
  security: apiKeySecurity,
  request: { params: PhoneParams, body: jsonBody(UpdatePhoneBody) },
  responses: { 200: jsonContent(PhoneSchema, "The updated phone"), ...errorResponses(400, 401, 404, 422) },
});

export const customerRoutes = createRouter()
  .openapi(createCustomerRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const now = nowIso();
    const customer: CustomerRow = {
      id: uuidv7(),
      projectId: auth.projectId,
      externalId: body.external_id,
      firstName: body.first_name,
      lastName: body.last_name,
      metadata: body.metadata,
      timezone: body.timezone ?? null,
      consent: body.consent ?? null,
      createdAt: now,
      updatedAt: now,
    };
    const phone: PhoneRow = { id: uuidv7(), customerId: customer.id, projectId: auth.projectId, value: body.phone, isPrimary: true, status: "active", createdAt: now, updatedAt: now };
    try {
      await db.batch([db.insert(customers).values(customer), db.insert(customerPhones).values(phone)]);
    } catch (err) {
      // The unique index decides whether the external_id is taken (also between racing creates).
      if (violatesUnique(err, EXTERNAL_ID_INDEX)) throw customerExists(body.external_id);
      throw err;
    }
    return c.json(customerBody(customer, [phone]), 201);
  })
  .openapi(listCustomersRoute, async (c) => {
    const { auth, db } = c.var;
    const { limit, cursor, external_id } = c.req.valid("query");
    const onPage = and(eq(customers.projectId, auth.projectId), external_id !== undefined ? eq(customers.externalId, external_id) : undefined, afterCursor(customers.id, cursor));
    // The page and its customers' phones in one round trip: the phones' customers are the page's,
    // picked by a subquery (D1 binds at most 100 parameters, too few to list a page of up to 200 ids).
    const [rows, phones] = await db.batch([
      db.select().from(customers).where(onPage).orderBy(desc(customers.id)).limit(limit + 1),
      db
        .select()
        .from(customerPhones)
        .where(
          and(
            eq(customerPhones.projectId, auth.projectId),
            inArray(customerPhones.customerId, db.select({ id: customers.id }).from(customers).where(onPage).orderBy(desc(customers.id)).limit(limit)),
          ),
        )
        .orderBy(...phoneOrder),
    ]);
    const items = pageWithCursorHeader(c, rows, limit);
    const phonesByCustomer = new Map<string, PhoneRow[]>();
    for (const phone of phones) phonesByCustomer.set(phone.customerId, [...(phonesByCustomer.get(phone.customerId) ?? []), phone]);
    return c.json(
      items.map((row) => customerBody(row, phonesByCustomer.get(row.id) ?? [])),
      200,
    );
  })
  .openapi(getCustomerRoute, async (c) => {
    const { auth, db } = c.var;
    const id = c.req.valid("param").id;
    const [rows, phones] = await db.batch([customerQuery(db, auth.projectId, id), phonesQuery(db, auth.projectId, id)]);
    return c.json(customerBody(found(rows), phones), 200);
  })
  .openapi(updateCustomerRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const id = c.req.valid("param").id;
    let updated: CustomerRow[];
    let phones: PhoneRow[];
    try {
      [updated, phones] = await db.batch([
        db
          .update(customers)
          .set({ externalId: body.external_id, firstName: body.first_name, lastName: body.last_name, metadata: body.metadata, timezone: body.timezone, consent: body.consent, updatedAt: nowIso() })
          .where(and(eq(customers.id, id), eq(customers.projectId, auth.projectId)))
          .returning(),
        phonesQuery(db, auth.projectId, id),
      ]);
    } catch (err) {
      // Another customer of the project has the external_id (one not in the project updates nothing).
      if (body.external_id !== undefined && violatesUnique(err, EXTERNAL_ID_INDEX)) throw customerExists(body.external_id);
      throw err;
    }
    // Not in the project (or not at all).
    const [row] = updated;
    if (!row) throw new ApiError("customer_not_found", "Customer not found");
    return c.json(customerBody(row, phones), 200);
  })
  .openapi(deleteCustomerRoute, async (c) => {
    const { auth, db } = c.var;
    const id = c.req.valid("param").id;
    // Phones first: they reference the customer. Notifications keep their rows (no foreign key).
    const [, deleted] = await db.batch([
      db.delete(customerPhones).where(and(eq(customerPhones.customerId, id), eq(customerPhones.projectId, auth.projectId))),
      db
        .delete(customers)
        .where(and(eq(customers.id, id), eq(customers.projectId, auth.projectId)))
        .returning({ id: customers.id }),
    ]);
    if (deleted.length === 0) throw new ApiError("customer_not_found", "Customer not found");
    return c.body(null, 204);
  })
  .openapi(addPhoneRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const id = c.req.valid("param").id;
    const [rows, [duplicate]] = await db.batch([
      customerQuery(db, auth.projectId, id),
      db
        .select({ id: customerPhones.id })
        .from(customerPhones)
        .where(and(eq(customerPhones.customerId, id), eq(customerPhones.value, body.value)))
        .limit(1),
    ]);
    const customer = found(rows);
    if (duplicate) throw phoneExists(body.value);
    const now = nowIso();
    const phone: PhoneRow = { id: uuidv7(), customerId: customer.id, projectId: auth.projectId, value: body.value, isPrimary: body.is_primary, status: "active", createdAt: now, updatedAt: now };
    const insert = db.insert(customerPhones).values(phone);
    try {
      if (body.is_primary) {
        await db.batch([
          db
            .update(customerPhones)
            .set({ isPrimary: false, updatedAt: now })
            .where(and(eq(customerPhones.customerId, customer.id), eq(customerPhones.isPrimary, true))),
          insert,
        ]);
      } else {
        await insert;
      }
    } catch (err) {
      if (violatesUnique(err, PHONE_VALUE_INDEX)) throw phoneExists(body.value);
      throw err;
    }
    return c.json(phoneBody(phone), 201);
  })
  .openapi(updatePhoneRoute, async (c) => {
    const { auth, db } = c.var;
    const body = c.req.valid("json");
    const params = c.req.valid("param");
    const [rows, [phone]] = await db.batch([
      customerQuery(db, auth.projectId, params.id),
      db
        .select()
        .from(customerPhones)
        .where(and(eq(customerPhones.id, params.phoneId), eq(customerPhones.customerId, params.id), eq(customerPhones.projectId, auth.projectId)))
        .limit(1),
    ]);
    const customer = found(rows);
    if (!phone) throw new ApiError("phone_not_found", "Phone not found");
    if (body.is_primary === false && phone.isPrimary) {
      throw new ApiError("primary_phone_required", "A customer always has a primary phone: make another phone primary instead");
    }
    const now = nowIso();
    const update = db
      .update(customerPhones)
      .set({ isPrimary: body.is_primary, status: body.status, updatedAt: now })
      .where(eq(customerPhones.id, phone.id))
      .returning();
    let updated: PhoneRow[];
    if (body.is_primary && !phone.isPrimary) {
      [, updated] = await db.batch([
        db
          .update(customerPhones)
          .set({ isPrimary: false, updatedAt: now })
          .where(and(eq(customerPhones.customerId, customer.id), eq(customerPhones.isPrimary, true))),
        update,
      ]);
    } else {
      updated = await update;
    }
    const [row] = updated;
    if (!row) throw new ApiError("phone_not_found", "Phone not found");
    return c.json(phoneBody(row), 200);
  });
