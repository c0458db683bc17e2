import { countryOfE164 } from "../lib/phone";

/** Where a call's Durable Object should live: near the callee, so the audio path is short. */

const REGION_COUNTRIES: Partial<Record<DurableObjectLocationHint, string>> = {
  // North America, Central America and the Caribbean (the +1 area is split by area code below).
  enam: "US CA MX GT BZ SV HN NI CR PA CU DO HT JM BS BB TT PR VI VG AG DM GD KN LC VC AI BM KY MS TC AW CW SX BQ MF BL GP MQ PM GL",
  sam: "AR BO BR CL CO EC FK GF GY PY PE SR UY VE",
  weur: "GB IE IM JE GG FR MC BE NL LU DE AT CH LI ES AD PT GI IT SM VA MT IS NO SE DK FO FI AX SJ",
  eeur: "PL CZ SK HU SI HR BA RS ME MK AL XK BG RO MD UA BY LT LV EE RU GR CY TR GE AM AZ",
  me: "AE SA QA BH KW OM YE IQ IR IL PS JO LB SY",
  afr: "DZ AO BJ BW BF BI CV CM CF TD KM CG CD CI DJ EG GQ ER SZ ET GA GM GH GN GW KE LS LR LY MG MW ML MR MU YT MA MZ NA NE NG RE RW SH ST SN SC SL SO ZA SS SD TZ TG TN UG EH ZM ZW",
  apac: "CN HK MO TW JP KR KP MN IN PK BD LK NP BT MV AF MM TH LA KH VN MY SG ID PH BN TL KZ UZ TM KG TJ IO",
  oc: "AU NZ PG FJ SB VU NC PF WS TO KI TV NR MH FM PW CK NU TK WF AS GU MP NF",
};

const REGION_OF = new Map<string, DurableObjectLocationHint>(
  Object.entries(REGION_COUNTRIES).flatMap(([region, countries]) =>
    (countries ?? "").split(" ").map((country) => [country, region as DurableObjectLocationHint] as const),
  ),
);

/**
 * Area codes of the US and Canadian Pacific and Mountain time zones (plus Alaska and Hawaii): those
 * numbers go to `wnam`, the rest of the +1 area to `enam`.
 */
const WESTERN_NANP_AREA_CODES = new Set(
  (
    // California
    "209 213 279 310 323 341 350 408 415 424 442 510 530 559 562 619 626 628 650 657 661 669 707 714 747 760 805 818 820 831 840 858 909 916 925 949 951 " +
    // Oregon, Washington, Nevada, Idaho, Utah, Arizona, Montana, Wyoming, Colorado, New Mexico, Alaska, Hawaii
    "458 503 541 971 206 253 360 425 509 564 702 725 775 208 986 385 435 801 480 520 602 623 928 406 307 303 719 720 970 983 505 575 907 808 " +
    // British Columbia, Alberta, Yukon/Northwest Territories
    "236 250 257 604 672 778 368 403 587 780 825 867"
  ).split(" "),
);

export function locationHintForPhone(e164: string): DurableObjectLocationHint | undefined {
  const country = countryOfE164(e164);
  if (country === "US" || country === "CA") return WESTERN_NANP_AREA_CODES.has(e164.slice(2, 5)) ? "wnam" : "enam";
  return country ? REGION_OF.get(country) : undefined;
}
