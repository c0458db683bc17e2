import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { count, createAgent, QUICKSTART_AGENT, QUICKSTART_VARIABLES, storedEvents, waitUntilEnded } from "../fixtures";
import { api, signup, type Account } from "../helpers";

// The quickstart's step 3 body as curl sends it.
const QUICKSTART_CUSTOMER_JSON = `{
    "external_id": "user_12345",
    "first_name": "John",
    "last_name": "Smith",
    "phone": "+14155552671"
  }`;

const UNKNOWN_ID = "0193b1c2-7e4a-7c1e-9d5a-2f1e4c3b2a10";

const CONSENT = { type: "express_written", obtained_at: "2026-11-02T14:05:00Z", source: "https://example.com/signup#voice-consent" };

const customerCount = (projectId: string) => count("customers", "project_id = ?", projectId);
const phoneCount = (projectId: string) => count("customer_phones", "project_id = ?", projectId);

let serial = 0;
async function createCustomer(account: Account, overrides: Record<string, unknown> = {}) {
  serial += 1;
  const res = await api("POST", "/api/v1/customers", {
    key: account.key,
    body: { external_id: `ext_${serial}`, first_name: "John", last_name: "Smith", phone: "+14155550100", ...overrides },
  });
  expect(res.status).toBe(201);
  return res.body;
}

async function addPhone(account: Account, customerId: string, body: Record<string, unknown>) {
  const res = await api("POST", `/api/v1/customers/${customerId}/phones`, { key: account.key, body });
  expect(res.status).toBe(201);
  return res.body;
}

describe("POST /api/v1/customers", () => {
  it("accepts the quickstart's request verbatim and stores the customer with a primary phone", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/customers", { key: account.key, rawBody: QUICKSTART_CUSTOMER_JSON });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      project_id: account.projectId,
      external_id: "user_12345",
      first_name: "John",
      last_name: "Smith",
      metadata: {},
      timezone: null,
      consent: null,
      phones: [
        {
          id: expect.any(String),
          customer_id: res.body.id,
          value: "+14155552671",
          is_primary: true,
          status: "active",
          created_at: res.body.created_at,
          updated_at: res.body.created_at,
        },
      ],
      created_at: expect.any(String),
      updated_at: res.body.created_at,
    });
    const phone = await env.DB.prepare("SELECT customer_id, project_id, value, is_primary, status FROM customer_phones WHERE id = ?").bind(res.body.phones[0].id).first();
    expect(phone).toEqual({ customer_id: res.body.id, project_id: account.projectId, value: "+14155552671", is_primary: 1, status: "active" });
  });

  it("keeps metadata", async () => {
    const account = await signup();
    const metadata = { plan: "pro", seats: 3, tags: ["vip"], nested: { ok: true } };
    const customer = await createCustomer(account, { metadata });
    expect(customer.metadata).toEqual(metadata);
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body.metadata).toEqual(metadata);
  });

  it("refuses a request without credentials", async () => {
    expect((await api("POST", "/api/v1/customers", { rawBody: QUICKSTART_CUSTOMER_JSON })).status).toBe(401);
    expect((await api("GET", "/api/v1/customers")).status).toBe(401);
  });

  const valid = { external_id: "user_1", first_name: "John", last_name: "Smith", phone: "+14155552671" };
  it.each([
    ["the phone has no +", { phone: "4155552671" }, "phone"],
    ["the phone has spaces", { phone: "+1 415 555 2671" }, "phone"],
    ["the phone has punctuation", { phone: "+1 (415) 555-2671" }, "phone"],
    ["the phone is too short", { phone: "+1415555" }, "phone"],
    ["the phone is too long", { phone: "+1415555267112345" }, "phone"],
    ["the phone is not a valid US number", { phone: "+14150000000" }, "phone"],
    ["the phone is outside its country's number ranges", { phone: "+33712345678" }, "phone"],
    ["the phone's country code does not exist", { phone: "+999123456789" }, "phone"],
    ["the phone is a number", { phone: 14155552671 }, "phone"],
    ["the phone is missing", { phone: undefined }, "phone"],
    ["external_id is missing", { external_id: undefined }, "external_id"],
    ["external_id is blank", { external_id: " " }, "external_id"],
    ["external_id is too long", { external_id: "x".repeat(256) }, "external_id"],
    ["first_name is missing", { first_name: undefined }, "first_name"],
    ["first_name is too long", { first_name: "x".repeat(101) }, "first_name"],
    ["last_name is not a string", { last_name: ["Smith"] }, "last_name"],
    ["metadata is an array", { metadata: ["vip"] }, "metadata"],
    ["metadata is a string", { metadata: "vip" }, "metadata"],
    ["metadata is over 16 KB", { metadata: { notes: "x".repeat(16 * 1024) } }, "metadata"],
    ["the timezone is unknown", { timezone: "Mars/Olympus_Mons" }, "timezone"],
    ["the timezone is a UTC offset, not an IANA zone", { timezone: "+02:00" }, "timezone"],
    ["the timezone is null", { timezone: null }, "timezone"],
    ["the consent's type is unknown", { consent: { ...CONSENT, type: "implied" } }, "consent.type"],
    ["the consent has no obtained_at", { consent: { type: "express", source: "web form" } }, "consent.obtained_at"],
    ["the consent's obtained_at has no offset", { consent: { ...CONSENT, obtained_at: "2026-11-02T14:05:00" } }, "consent.obtained_at"],
    ["the consent was obtained in the future", { consent: { ...CONSENT, obtained_at: new Date(Date.now() + 86_400_000).toISOString() } }, "consent.obtained_at"],
    ["the consent's source is blank", { consent: { ...CONSENT, source: " " } }, "consent.source"],
    ["the consent has a field it does not know", { consent: { ...CONSENT, obtained_by: "agent 7" } }, "consent"],
    ["the consent is a string", { consent: "yes" }, "consent"],
  ])("returns 400 and creates nothing when %s", async (_case, override, path) => {
    const account = await signup();
    const res = await api("POST", "/api/v1/customers", { key: account.key, body: { ...valid, ...override } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("validation_error");
    expect(res.body.details).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect(await customerCount(account.projectId)).toBe(0);
    expect(await phoneCount(account.projectId)).toBe(0);
  });

  it("explains what E.164 is", async () => {
    const account = await signup();
    const res = await api("POST", "/api/v1/customers", { key: account.key, body: { ...valid, phone: "+1 415 555 2671" } });
    expect(res.body.details).toEqual([{ path: "phone", message: expect.stringContaining("must be E.164") }]);
  });

  it("refuses a duplicate external_id in the project with 409 customer_exists", async () => {
    const account = await signup();
    await createCustomer(account, { external_id: "dup" });
    const res = await api("POST", "/api/v1/customers", { key: account.key, body: { ...valid, external_id: "dup" } });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ statusCode: 409, error: "Conflict", code: "customer_exists" });
    expect(await customerCount(account.projectId)).toBe(1);
    expect(await phoneCount(account.projectId)).toBe(1);
  });

  it("lets only one of two simultaneous creates with one external_id through", async () => {
    const account = await signup();
    const results = await Promise.all([1, 2, 3].map(() => api("POST", "/api/v1/customers", { key: account.key, body: { ...valid, external_id: "racy" } })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    expect(results.filter((r) => r.status === 409).map((r) => r.body.code)).toEqual(["customer_exists", "customer_exists"]);
    expect(await customerCount(account.projectId)).toBe(1);
    expect(await phoneCount(account.projectId)).toBe(1);
  });

  it("allows the same external_id in another project", async () => {
    const account = await signup();
    await createCustomer(account, { external_id: "shared" });
    const project = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "second" } });
    const inOtherProject = await api("POST", "/api/v1/customers", { key: project.body.api_key, body: { ...valid, external_id: "shared" } });
    expect(inOtherProject.status).toBe(201);
    expect(inOtherProject.body.project_id).toBe(project.body.id);
    const inOtherBusiness = await api("POST", "/api/v1/customers", { key: (await signup()).key, body: { ...valid, external_id: "shared" } });
    expect(inOtherBusiness.status).toBe(201);
  });
});

describe("GET /api/v1/customers", () => {
  it("lists the project's customers newest first with their phones, a page at a time", async () => {
    const account = await signup();
    const first = await createCustomer(account);
    const second = await createCustomer(account);
    const third = await createCustomer(account);
    const extra = await addPhone(account, second.id, { value: "+14155550101", is_primary: true });
    await createCustomer(await signup());

    const page1 = await api("GET", "/api/v1/customers?limit=2", { key: account.key });
    expect(page1.status).toBe(200);
    expect(page1.body.map((c: { id: string }) => c.id)).toEqual([third.id, second.id]);
    expect(page1.body[0]).toEqual(third);
    expect(page1.body[1].phones.map((p: { id: string; is_primary: boolean }) => [p.id, p.is_primary])).toEqual([
      [extra.id, true],
      [second.phones[0].id, false],
    ]);
    const cursor = page1.headers.get("x-next-cursor");
    expect(cursor).toBeTruthy();

    const page2 = await api("GET", `/api/v1/customers?limit=2&cursor=${cursor}`, { key: account.key });
    expect(page2.body).toEqual([first]);
    expect(page2.headers.get("x-next-cursor")).toBeNull();
  });

  it("filters by exact external_id", async () => {
    const account = await signup();
    await createCustomer(account, { external_id: "user_1" });
    const wanted = await createCustomer(account, { external_id: "user_12345" });
    await createCustomer(account, { external_id: "user_123456" });
    const res = await api("GET", "/api/v1/customers?external_id=user_12345", { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual([wanted]);
    expect((await api("GET", "/api/v1/customers?external_id=nobody", { key: account.key })).body).toEqual([]);
  });
});

describe("GET /api/v1/customers/{id}", () => {
  it("returns the customer with its phones, primary first, then oldest first", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const older = await addPhone(account, customer.id, { value: "+14155550102" });
    const newer = await addPhone(account, customer.id, { value: "+14155550103" });
    const res = await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key });
    expect(res.status).toBe(200);
    expect(res.body.phones.map((p: { id: string }) => p.id)).toEqual([customer.phones[0].id, older.id, newer.id]);

    await api("PATCH", `/api/v1/customers/${customer.id}/phones/${newer.id}`, { key: account.key, body: { is_primary: true } });
    const after = await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key });
    expect(after.body.phones.map((p: { id: string }) => p.id)).toEqual([newer.id, customer.phones[0].id, older.id]);
  });

  it.each([
    ["an unknown id", UNKNOWN_ID],
    ["an id that is not a UUID", "user_12345"],
  ])("is 404 customer_not_found for %s", async (_case, id) => {
    const account = await signup();
    const res = await api("GET", `/api/v1/customers/${id}`, { key: account.key });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: "customer_not_found", message: "Customer not found" });
  });

  it("is 404 from another project of the same business", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const project = await api("POST", "/api/v1/projects", { token: account.accessToken, body: { name: "second" } });
    const res = await api("GET", `/api/v1/customers/${customer.id}`, { key: project.body.api_key });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("customer_not_found");
  });
});

describe("PATCH /api/v1/customers/{id}", () => {
  it("changes only the fields sent; metadata is replaced whole", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { metadata: { plan: "free", seats: 1 } });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const res = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { first_name: "Johnny", metadata: { plan: "pro" } } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...customer, first_name: "Johnny", metadata: { plan: "pro" }, updated_at: expect.any(String) });
    expect(res.body.updated_at > customer.updated_at).toBe(true);
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body).toEqual(res.body);
  });

  it("changes external_id, keeps its own, and refuses another customer's with 409", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { external_id: "a" });
    await createCustomer(account, { external_id: "b" });
    expect((await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { external_id: "a" } })).status).toBe(200);
    const taken = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { external_id: "b" } });
    expect(taken.status).toBe(409);
    expect(taken.body.code).toBe("customer_exists");
    const renamed = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { external_id: "c" } });
    expect(renamed.status).toBe(200);
    expect(renamed.body.external_id).toBe("c");
  });

  it.each([
    ["an empty body", {}, ""],
    ["a blank last_name", { last_name: "" }, "last_name"],
    ["metadata that is not an object", { metadata: 5 }, "metadata"],
    ["a null external_id", { external_id: null }, "external_id"],
  ])("returns 400 and changes nothing for %s", async (_case, body, path) => {
    const account = await signup();
    const customer = await createCustomer(account);
    const res = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body).toEqual(customer);
  });

  it("is 404 for an unknown customer", async () => {
    const account = await signup();
    const res = await api("PATCH", `/api/v1/customers/${UNKNOWN_ID}`, { key: account.key, body: { first_name: "X" } });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("customer_not_found");
  });
});

describe("a customer's consent record", () => {
  const storedConsent = async (id: string) => (await env.DB.prepare("SELECT consent FROM customers WHERE id = ?").bind(id).first<{ consent: string | null }>())?.consent;

  it("is stored as given on create and returned by every read", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { consent: CONSENT });
    expect(customer.consent).toEqual(CONSENT);
    expect(JSON.parse((await storedConsent(customer.id))!)).toEqual(CONSENT);
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body.consent).toEqual(CONSENT);
    expect((await api("GET", "/api/v1/customers", { key: account.key })).body[0].consent).toEqual(CONSENT);
  });

  it("is replaced, kept when left out, and cleared with null on update; a bad one changes nothing", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    expect(customer.consent).toBeNull();
    const replaced = { type: "existing_relationship", obtained_at: "2025-01-15T09:00:00-05:00", source: "Patient since 2019, contract 1182" };
    expect((await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { consent: replaced } })).body.consent).toEqual(replaced);
    expect((await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { first_name: "Jean" } })).body.consent).toEqual(replaced);
    const bad = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { consent: { ...replaced, type: "verbal" } } });
    expect(bad.status).toBe(400);
    expect(JSON.parse((await storedConsent(customer.id))!)).toEqual(replaced);
    const cleared = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { consent: null } });
    expect(cleared.body.consent).toBeNull();
    expect(await storedConsent(customer.id)).toBeNull();
  });

  it("is in the call.summary of the customer's calls, as it was when the call was triggered", async () => {
    const account = await signup();
    const agent = await createAgent(account, QUICKSTART_AGENT);
    const customer = await createCustomer(account, { consent: CONSENT });
    const created = await api("POST", "/api/v1/notifications", { key: account.key, body: { customer_id: customer.id, agent_id: agent.id, variables: QUICKSTART_VARIABLES } });
    expect(created.status).toBe(201);
    await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { consent: null } });
    await waitUntilEnded(account, created.body.notification.id);
    const summary = (await storedEvents(created.body.notification.id)).find((event) => event.event_name === "call.summary");
    expect(JSON.parse(summary!.payload).data).toMatchObject({ consent: CONSENT, opted_out: false });
  });
});

describe("a customer's timezone", () => {
  const storedTimeZone = async (id: string) => (await env.DB.prepare("SELECT timezone FROM customers WHERE id = ?").bind(id).first<{ timezone: string | null }>())?.timezone;

  it("is taken on create as IANA spells it, stored and returned", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { timezone: "america/new_york" });
    expect(customer.timezone).toBe("America/New_York");
    expect(await storedTimeZone(customer.id)).toBe("America/New_York");
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body.timezone).toBe("America/New_York");
  });

  it("is set, kept when left out, and cleared with null on update", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    expect(customer.timezone).toBeNull();
    const set = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { timezone: "Europe/Paris" } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ ...customer, timezone: "Europe/Paris", updated_at: expect.any(String) });
    const renamed = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { first_name: "Jean" } });
    expect(renamed.body.timezone).toBe("Europe/Paris");
    const cleared = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { timezone: null } });
    expect(cleared.status).toBe(200);
    expect(cleared.body.timezone).toBeNull();
    expect(await storedTimeZone(customer.id)).toBeNull();
  });

  it("refuses an unknown zone on update with 400 at timezone, and keeps the one stored", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { timezone: "Asia/Tokyo" });
    const res = await api("PATCH", `/api/v1/customers/${customer.id}`, { key: account.key, body: { timezone: "Asia/Atlantis" } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "validation_error", details: [{ path: "timezone", message: expect.stringContaining("IANA") }] });
    expect(await storedTimeZone(customer.id)).toBe("Asia/Tokyo");
  });
});

describe("DELETE /api/v1/customers/{id}", () => {
  it("deletes the customer and its phones; its notifications stay", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const extra = await addPhone(account, customer.id, { value: "+14155550104" });
    const now = new Date().toISOString();
    await env.DB.prepare(
      `INSERT INTO notifications (id, project_id, business_id, customer_id, phone_id, target_phone_e164, variables, collect_feedback,
         max_duration_seconds, rendered_prompt, status, call_id, call_status, transcript, simulated, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, '{}', 0, 180, 'Hello', 'completed', ?, 'completed', '[]', 1, ?, ?)`,
    )
      .bind(crypto.randomUUID(), account.projectId, account.businessId, customer.id, extra.id, extra.value, crypto.randomUUID(), now, now)
      .run();

    const res = await api("DELETE", `/api/v1/customers/${customer.id}`, { key: account.key });
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).status).toBe(404);
    expect(await customerCount(account.projectId)).toBe(0);
    expect(await phoneCount(account.projectId)).toBe(0);
    expect(await count("notifications", "customer_id = ?", customer.id)).toBe(1);

    const again = await api("DELETE", `/api/v1/customers/${customer.id}`, { key: account.key });
    expect(again.status).toBe(404);
    expect(again.body.code).toBe("customer_not_found");
  });

  it("frees the external_id for a new customer", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { external_id: "reused" });
    expect((await api("DELETE", `/api/v1/customers/${customer.id}`, { key: account.key })).status).toBe(204);
    await createCustomer(account, { external_id: "reused" });
  });
});

describe("POST /api/v1/customers/{id}/phones", () => {
  it("adds a non-primary active phone by default", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const res = await api("POST", `/api/v1/customers/${customer.id}/phones`, { key: account.key, body: { value: "+447911123456" } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      customer_id: customer.id,
      value: "+447911123456",
      is_primary: false,
      status: "active",
      created_at: expect.any(String),
      updated_at: res.body.created_at,
    });
    const stored = await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key });
    expect(stored.body.phones).toEqual([customer.phones[0], res.body]);
  });

  it("makes the new phone the only primary when is_primary is true", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const second = await addPhone(account, customer.id, { value: "+33612345678" });
    const third = await addPhone(account, customer.id, { value: "+12125550101", is_primary: true });
    expect(third.is_primary).toBe(true);
    const primaries = await env.DB.prepare("SELECT id FROM customer_phones WHERE customer_id = ? AND is_primary = 1").bind(customer.id).all<{ id: string }>();
    expect(primaries.results.map((r) => r.id)).toEqual([third.id]);
    const phones = (await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body.phones;
    expect(phones.map((p: { id: string }) => p.id)).toEqual([third.id, customer.phones[0].id, second.id]);
  });

  it("refuses a number the customer already has with 409 phone_exists", async () => {
    const account = await signup();
    const customer = await createCustomer(account, { phone: "+14155552671" });
    const res = await api("POST", `/api/v1/customers/${customer.id}/phones`, { key: account.key, body: { value: "+14155552671", is_primary: true } });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("phone_exists");
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body).toEqual(customer);
  });

  it("allows one number on two customers", async () => {
    const account = await signup();
    await createCustomer(account, { phone: "+14155552671" });
    const other = await createCustomer(account, { phone: "+14155550100" });
    await addPhone(account, other.id, { value: "+14155552671" });
  });

  it.each([
    ["a value that is not E.164", { value: "(415) 555-2671" }, "value"],
    ["a missing value", {}, "value"],
    ["is_primary that is not a boolean", { value: "+14155550101", is_primary: "yes" }, "is_primary"],
  ])("returns 400 and adds nothing for %s", async (_case, body, path) => {
    const account = await signup();
    const customer = await createCustomer(account);
    const res = await api("POST", `/api/v1/customers/${customer.id}/phones`, { key: account.key, body });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect(await phoneCount(account.projectId)).toBe(1);
  });

  it("is 404 customer_not_found for an unknown customer", async () => {
    const account = await signup();
    const res = await api("POST", `/api/v1/customers/${UNKNOWN_ID}/phones`, { key: account.key, body: { value: "+14155550101" } });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("customer_not_found");
    expect(await phoneCount(account.projectId)).toBe(0);
  });
});

describe("PATCH /api/v1/customers/{id}/phones/{phoneId}", () => {
  it("moves primary to the phone and changes status", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const [first] = customer.phones;
    const second = await addPhone(account, customer.id, { value: "+14155550101" });
    await new Promise((resolve) => setTimeout(resolve, 5));

    const res = await api("PATCH", `/api/v1/customers/${customer.id}/phones/${second.id}`, { key: account.key, body: { is_primary: true } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...second, is_primary: true, updated_at: expect.any(String) });
    expect(res.body.updated_at > second.updated_at).toBe(true);
    const phones = (await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body.phones;
    expect(phones.map((p: { id: string; is_primary: boolean }) => [p.id, p.is_primary])).toEqual([
      [second.id, true],
      [first.id, false],
    ]);

    const optedOut = await api("PATCH", `/api/v1/customers/${customer.id}/phones/${first.id}`, { key: account.key, body: { status: "opted_out" } });
    expect(optedOut.status).toBe(200);
    expect(optedOut.body).toMatchObject({ id: first.id, status: "opted_out", is_primary: false });
  });

  it("refuses to unset the primary phone with 422 primary_phone_required", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    await addPhone(account, customer.id, { value: "+14155550101" });
    const before = (await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body;
    const res = await api("PATCH", `/api/v1/customers/${customer.id}/phones/${customer.phones[0].id}`, { key: account.key, body: { is_primary: false, status: "invalid" } });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ statusCode: 422, code: "primary_phone_required" });
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body).toEqual(before);
  });

  it.each([
    ["an empty body", {}, ""],
    ["an unknown status", { status: "blocked" }, "status"],
    ["is_primary that is not a boolean", { is_primary: 1 }, "is_primary"],
  ])("returns 400 and changes nothing for %s", async (_case, body, path) => {
    const account = await signup();
    const customer = await createCustomer(account);
    const res = await api("PATCH", `/api/v1/customers/${customer.id}/phones/${customer.phones[0].id}`, { key: account.key, body });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect((await api("GET", `/api/v1/customers/${customer.id}`, { key: account.key })).body).toEqual(customer);
  });

  it("is 404 phone_not_found for another customer's phone or an unknown one", async () => {
    const account = await signup();
    const customer = await createCustomer(account);
    const other = await createCustomer(account);
    for (const phoneId of [other.phones[0].id, UNKNOWN_ID, "not-a-uuid"]) {
      const res = await api("PATCH", `/api/v1/customers/${customer.id}/phones/${phoneId}`, { key: account.key, body: { status: "opted_out" } });
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: "phone_not_found", message: "Phone not found" });
    }
    expect((await api("GET", `/api/v1/customers/${other.id}`, { key: account.key })).body).toEqual(other);
  });
});
