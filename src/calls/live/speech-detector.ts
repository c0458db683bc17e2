/**
 * Hears the caller start (and stop) speaking on the μ-law frames Twilio sends, for engines that
 * do not say when the caller talks over the agent (barge-in `local`). A frame is speech when it is
 * loud on the whole — its RMS is at least `SPEECH_RMS` and at least half of its samples are
 * louder than `LOUD_SAMPLE` — so that a click or a few stray bytes in a quiet frame are not
 * speech; `ONSET_FRAMES` speech frames in a row start speech, `HANGOVER_FRAMES` quiet frames in a
 * row end it. Both μ-law silences (0xFF and 0x7F) decode to 0 and never count.
 */

/** RMS of a speech frame, in 16-bit linear units: about −36 dBFS, well above a phone line's noise. */
const SPEECH_RMS = 500;
/** A sample this loud (about −44 dBFS) counts toward the frame's loud half. */
const LOUD_SAMPLE = 200;
/** 40 ms of speech: one loud frame (a click, a bump) is not the caller talking. */
const ONSET_FRAMES = 2;
/** 300 ms of quiet: a pause between words is not the end of speech. */
const HANGOVER_FRAMES = 15;

/** G.711 μ-law byte → |16-bit linear sample| (ITU-T G.711; the sign is of no use to an energy measure). */
const MULAW_MAGNITUDE = (() => {
  const table = new Int32Array(256);
  for (let byte = 0; byte < 256; byte += 1) {
    const inverted = ~byte & 0xff;
    const exponent = (inverted >> 4) & 0x07;
    const mantissa = inverted & 0x0f;
    table[byte] = (((mantissa << 3) + 0x84) << exponent) - 0x84;
  }
  return table;
})();

export type SpeechChange = "started" | "stopped" | null;

export class CallerSpeechDetector {
  private speaking = false;
  /** Frames in a row that disagree with `speaking`. */
  private run = 0;

  /** One frame (base64 μ-law): whether speech started or stopped with it. */
  push(payload: string): SpeechChange {
    const speech = isSpeechFrame(payload);
    if (speech === this.speaking) {
      this.run = 0;
      return null;
    }
    this.run += 1;
    if (this.run < (this.speaking ? HANGOVER_FRAMES : ONSET_FRAMES)) return null;
    this.speaking = speech;
    this.run = 0;
    return speech ? "started" : "stopped";
  }
}

function isSpeechFrame(payload: string): boolean {
  const binary = atob(payload);
  const length = binary.length;
  if (length === 0) return false;
  let energy = 0;
  let loud = 0;
  for (let i = 0; i < length; i += 1) {
    const magnitude = MULAW_MAGNITUDE[binary.charCodeAt(i)]!;
    energy += magnitude * magnitude;
    if (magnitude >= LOUD_SAMPLE) loud += 1;
  }
  return loud * 2 >= length && energy >= SPEECH_RMS * SPEECH_RMS * length;
}
