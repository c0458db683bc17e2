import { describe, expect, it } from "vitest";
import { DEFAULT_RECORDING_DISCLOSURE, FEEDBACK_OUTPUT_SCHEMA, llmScript, openingLine, promptValues, renderScript, renderTemplate, screenerReply, withDisclosure } from "../../src/calls/prompt";
import { QUICKSTART_OPENING } from "../fixtures";

const sources = {
  business: { name: "Acme Inc", summary: "A SaaS platform for project management", industry: "Software" },
  customer: { firstName: "John", lastName: "Smith" },
};

describe("renderTemplate", () => {
  it("fills tokens, with or without whitespace inside the braces", () => {
    expect(renderTemplate("Hi {{name}}, {{ name }} and {{   name\t}}!", { name: "John" })).toEqual({ text: "Hi John, John and John!", missing: [] });
  });

  it("lists missing names once each, in order of appearance, and leaves those tokens in place", () => {
    const rendered = renderTemplate("{{b}} {{a}} {{ b }} {{known}} {{c.d-e_f}}", { known: "ok" });
    expect(rendered.missing).toEqual(["b", "a", "c.d-e_f"]);
    expect(rendered.text).toBe("{{b}} {{a}} {{ b }} ok {{c.d-e_f}}");
  });

  it("ignores braces that are not tokens and does not re-render filled values", () => {
    expect(renderTemplate("{{1abc}} {{ two words }} {single} {{x}}", { x: "{{y}}" })).toEqual({ text: "{{1abc}} {{ two words }} {single} {{y}}", missing: [] });
  });

  it("fills an empty string value rather than calling it missing", () => {
    expect(renderTemplate("[{{x}}]", { x: "" })).toEqual({ text: "[]", missing: [] });
  });

  it("does not take names from Object.prototype", () => {
    expect(renderTemplate("{{constructor}} {{toString}}", {}).missing).toEqual(["constructor", "toString"]);
  });
});

describe("promptValues", () => {
  it("builds the documented built-ins from the business, the customer and the request", () => {
    expect(promptValues({ ...sources, request: { message: "Your order shipped", context: "Order #42" } })).toEqual({
      business_name: "Acme Inc",
      business_summary: "A SaaS platform for project management",
      industry: "Software",
      recipient_name: "John Smith",
      recipient_first_name: "John",
      recipient_last_name: "Smith",
      message: "Your order shipped",
      context: "Order #42",
    });
  });

  it("lets variables override built-ins and renders numbers and booleans with String()", () => {
    const values = promptValues({ ...sources, request: { variables: { business_name: "Acme Dental", count: 3, vip: false, ratio: 0.5 } } });
    expect(values).toMatchObject({ business_name: "Acme Dental", count: "3", vip: "false", ratio: "0.5" });
  });

  it("leaves message and context unset when the request has none, so a prompt using them is refused", () => {
    const values = promptValues({ ...sources, request: {} });
    expect(renderTemplate("{{message}} / {{context}}", values).missing).toEqual(["message", "context"]);
  });
});

describe("renderScript", () => {
  it("collects missing names across prompt, first message and voicemail message, unique and in order", () => {
    const script = renderScript(
      { systemPrompt: "Call {{recipient_first_name}} about {{topic}}.", firstMessage: "Hello {{greeting_name}}, {{topic}}", voicemailMessage: "Call {{callback}}", outputSchema: null },
      promptValues({ ...sources, request: {} }),
    );
    expect(script.missing).toEqual(["topic", "greeting_name", "callback"]);
  });

  it("renders all three texts and keeps an absent first message null", () => {
    const script = renderScript({ systemPrompt: "For {{business_name}}", firstMessage: null, voicemailMessage: "Call {{business_name}} back", outputSchema: { type: "object" } }, promptValues({ ...sources, request: {} }));
    expect(script).toEqual({ prompt: "For Acme Inc", firstMessage: null, voicemailMessage: "Call Acme Inc back", outputSchema: { type: "object" }, missing: [] });
  });
});

describe("the LLM path script", () => {
  it("is built from the business profile and the message, with context only when given", () => {
    const values = promptValues({ ...sources, request: { message: "Your order #42 ships tomorrow." } });
    const script = renderScript(llmScript({ hasContext: false, collectFeedback: false }), values);
    expect(script.missing).toEqual([]);
    expect(script.prompt).toContain("calling John Smith on behalf of Acme Inc, a business in Software: A SaaS platform for project management.");
    expect(script.prompt).toContain('"Your order #42 ships tomorrow."');
    expect(script.prompt).not.toMatch(/background/i);
    expect(script.prompt).not.toMatch(/reschedule/i);
    expect(script.outputSchema).toBeNull();

    const withContext = renderScript(llmScript({ hasContext: true, collectFeedback: false }), promptValues({ ...sources, request: { message: "m", context: "Gate code 1234" } }));
    expect(withContext.prompt).toContain("Gate code 1234");
  });

  it("with collect_feedback asks to confirm, cancel or reschedule and has the feedback schema", () => {
    const values = promptValues({ ...sources, request: { message: "Your appointment is on Monday." } });
    const script = renderScript(llmScript({ hasContext: false, collectFeedback: true }), values);
    expect(script.prompt).toMatch(/confirm, would like to cancel, or would like to reschedule/);
    expect(script.outputSchema).toEqual(FEEDBACK_OUTPUT_SCHEMA);
    expect(FEEDBACK_OUTPUT_SCHEMA).toMatchObject({
      required: ["response"],
      properties: {
        response: { type: "string", enum: ["confirmed", "cancel_requested", "reschedule_requested", "no_clear_answer"] },
        reschedule_time: { type: "string" },
        notes: { type: "string" },
      },
    });
  });

  it("refuses a missing message like any other token", () => {
    expect(renderScript(llmScript({ hasContext: false, collectFeedback: false }), promptValues({ ...sources, request: {} })).missing).toEqual(["message"]);
  });
});

describe("openingLine", () => {
  const values = { recipient_first_name: "John", business_name: "Acme Inc" };
  const prompt = `Start the call by saying: "${QUICKSTART_OPENING}" If they need to reschedule, collect a preferred time.`;

  it("prefers the rendered first message", () => {
    expect(openingLine({ firstMessage: "Hello John!", prompt, values, llm: null })).toBe("Hello John!");
  });

  it("else speaks the quoted sentence after “saying:” in the prompt (the quickstart's)", () => {
    expect(openingLine({ firstMessage: null, prompt, values, llm: null })).toBe(QUICKSTART_OPENING);
  });

  it("else greets the person for the business", () => {
    expect(openingLine({ firstMessage: null, prompt: "Be kind.", values, llm: null })).toBe("Hi John, this is Acme Inc calling.");
  });

  it("on the LLM path greets, delivers the message and, collecting feedback, asks for it", () => {
    expect(openingLine({ firstMessage: null, prompt, values, llm: { message: "Your order ships tomorrow.", collectFeedback: false } })).toBe(
      "Hi John, this is Acme Inc calling. Your order ships tomorrow.",
    );
    expect(openingLine({ firstMessage: null, prompt, values, llm: { message: "Your visit is Monday at 9.", collectFeedback: true } })).toBe(
      "Hi John, this is Acme Inc calling. Your visit is Monday at 9. Can you confirm, or would you like to cancel or reschedule?",
    );
  });
});

describe("withDisclosure", () => {
  it("puts a recorded call's disclosure (the agent's, else the default) before the opening", () => {
    expect(withDisclosure("Hi John.", { disclosure: null })).toBe(`${DEFAULT_RECORDING_DISCLOSURE} Hi John.`);
    expect(DEFAULT_RECORDING_DISCLOSURE).toBe("This call is recorded.");
    expect(withDisclosure("Hi John.", { disclosure: "We record our calls." })).toBe("We record our calls. Hi John.");
    expect(withDisclosure("Hi John.", null)).toBe("Hi John.");
  });
});

describe("screenerReply", () => {
  const values = promptValues({ ...sources, request: {} });

  it("says in one sentence who calls, from which business, for whom and — when the request says — why", () => {
    expect(screenerReply({ agentName: "Ava", values, purpose: "Your order ships tomorrow." })).toBe(
      "Hi, this is Ava, an automated assistant calling from Acme Inc for John Smith, about: Your order ships tomorrow.",
    );
    expect(screenerReply({ agentName: null, values, purpose: null })).toBe("Hi, this is an automated assistant calling from Acme Inc for John Smith.");
  });
});
