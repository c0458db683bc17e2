import { CHANNELS, MULAW_SILENCE, recordingHttpMetadata, WAV_HEADER_BYTES, writeWavHeader, type CallRecording } from "../recording";
import { base64ByteLength, type MediaTap } from "./media-bridge";

/**
 * Records a live call as what the caller heard, beside the relay (a `MediaTap` of the bridge).
 *
 * The caller's stream is the clock: Twilio sends a frame every 20 ms, silence included, so the
 * caller samples received so far are "now". Agent audio is placed where Twilio plays it — after the
 * agent audio sent before it, and never before now — and a `clear` removes what lies beyond now,
 * as Twilio drops it unplayed. A caller frame is final when it arrives, and so is the agent audio
 * beside it (a clear only reaches later audio), so each frame is interleaved (left caller, right
 * agent) straight into the WAV being built: per message, one base64 decode into a buffer that is
 * reused and a copy loop, nothing asynchronous.
 *
 * The WAV goes to R2 in parts of one size (R2's multipart rule: every part but the last the same
 * size, at least 5 MiB). Part 1 begins with the header, whose lengths are known only at the end, so
 * it is kept until then; each later part is uploaded as soon as it is full, so a long call holds
 * at most part 1 and the part being filled. A call whose WAV fits in one part is a single put.
 */

/** R2's smallest part; every part but the last has exactly this size. */
export const RECORDING_PART_BYTES = 5 * 1024 * 1024;
/** A part buffer starts with 8 s of stereo audio and doubles as the call goes on. */
const INITIAL_PART_BYTES = 8 * 8000 * CHANNELS;
/** Agent audio queued ahead of now: 8 s to start with (a response arrives faster than it plays). */
const INITIAL_AGENT_BYTES = 8 * 8000;
/** Twilio's frame: 20 ms. */
const CALLER_FRAME_BYTES = 160;

export class CallRecorder implements MediaTap, CallRecording {
  /** Sample frames recorded: the caller's audio received, which is the call's clock. */
  private frames = 0;
  /** The caller frame being interleaved, decoded. */
  private callerFrame = new Uint8Array(CALLER_FRAME_BYTES);

  /** Agent audio not yet reached by the clock: sample frames [agentBase + i] in `agent[i]`, up to `agentEnd`. */
  private agent = new Uint8Array(0);
  private agentBase = 0;
  private agentEnd = 0;

  /** The part being filled, its number (from 1) and the bytes in it (part 1 leaves room for the header). */
  private part = new Uint8Array(0);
  private partNumber = 1;
  private partBytes = WAV_HEADER_BYTES;
  /** Part 1 once full, held for its header. */
  private firstPart: Uint8Array | null = null;
  private upload: Promise<R2MultipartUpload> | null = null;
  private uploadedParts: Array<Promise<R2UploadedPart>> = [];

  constructor(
    private readonly bucket: R2Bucket,
    private readonly key: string,
  ) {}

  /** Something was heard: there is a recording to store. */
  get hasAudio(): boolean {
    return this.frames > 0;
  }

  callerAudio(payload: string): void {
    let length = base64ByteLength(payload);
    if (length > this.callerFrame.length) this.callerFrame = new Uint8Array(length);
    try {
      length = this.callerFrame.setFromBase64(payload).written;
    } catch {
      // Not base64: the frame still took its time on the line, as silence.
      this.callerFrame.fill(MULAW_SILENCE, 0, length);
    }
    this.interleave(length);
  }

  agentAudio(payload: string): void {
    if (this.agentEnd <= this.frames) {
      // Nothing of the agent is still to play: this audio plays from now.
      this.agentBase = this.frames;
      this.agentEnd = this.frames;
    }
    const at = this.agentEnd - this.agentBase;
    const length = base64ByteLength(payload);
    if (at + length > this.agent.length) this.makeAgentRoom(at + length);
    try {
      this.agentEnd += this.agent.subarray(this.agentEnd - this.agentBase).setFromBase64(payload).written;
    } catch {
      // Not base64: Twilio could not play it either.
    }
  }

  agentCleared(): void {
    this.agentEnd = Math.min(this.agentEnd, this.frames);
  }

  async store(): Promise<void> {
    const first = this.firstPart ?? this.part;
    writeWavHeader(first, this.frames);
    const last = this.part.subarray(0, this.partBytes);
    if (this.partNumber === 1 || (this.upload === null && this.partNumber === 2 && this.partBytes === 0)) {
      // One part in all: written at once.
      await this.bucket.put(this.key, this.partNumber === 1 ? last : first, { httpMetadata: recordingHttpMetadata });
      return;
    }
    if (this.partBytes > 0) this.uploadPart(this.partNumber, last);
    this.uploadPart(1, first);
    const upload = await this.multipartUpload();
    try {
      const parts = await Promise.all(this.uploadedParts);
      await upload.complete(parts.sort((a, b) => a.partNumber - b.partNumber));
    } catch (error) {
      await upload.abort().catch(() => undefined);
      throw error;
    }
  }

  async discard(): Promise<void> {
    if (this.upload) await (await this.upload).abort();
  }

  /** The caller's frame (`length` bytes in `callerFrame`) and the agent audio beside it, into the WAV. */
  private interleave(length: number): void {
    let done = 0;
    while (done < length) {
      if (this.partBytes === RECORDING_PART_BYTES) this.nextPart();
      const count = Math.min(length - done, (RECORDING_PART_BYTES - this.partBytes) / CHANNELS);
      if (this.partBytes + count * CHANNELS > this.part.length) this.growPart(this.partBytes + count * CHANNELS);
      const part = this.part;
      const caller = this.callerFrame;
      const agent = this.agent;
      let at = this.partBytes;
      const agentCount = Math.max(0, Math.min(count, this.agentEnd - this.frames));
      const agentAt = this.frames - this.agentBase;
      for (let i = 0; i < agentCount; i += 1) {
        part[at++] = caller[done + i]!;
        part[at++] = agent[agentAt + i]!;
      }
      for (let i = agentCount; i < count; i += 1) {
        part[at++] = caller[done + i]!;
        part[at++] = MULAW_SILENCE;
      }
      this.partBytes = at;
      this.frames += count;
      done += count;
    }
  }

  /** The part is full: part 1 is held for its header, a later one goes to R2 now. */
  private nextPart(): void {
    if (this.partNumber === 1) this.firstPart = this.part;
    else this.uploadPart(this.partNumber, this.part);
    this.partNumber += 1;
    this.part = new Uint8Array(0);
    this.partBytes = 0;
  }

  private growPart(needed: number): void {
    let size = Math.max(this.part.length, INITIAL_PART_BYTES);
    while (size < needed) size *= 2;
    const grown = new Uint8Array(Math.min(size, RECORDING_PART_BYTES));
    grown.set(this.part.subarray(0, this.partBytes));
    this.part = grown;
  }

  /** Room for agent audio up to index `needed`: what the clock has passed is dropped first, then the buffer grows. */
  private makeAgentRoom(needed: number): void {
    const passed = Math.min(this.frames, this.agentEnd) - this.agentBase;
    const queued = this.agentEnd - this.agentBase - passed;
    if (needed - passed <= this.agent.length) {
      this.agent.copyWithin(0, passed, passed + queued);
    } else {
      let size = Math.max(this.agent.length, INITIAL_AGENT_BYTES);
      while (size < needed - passed) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.agent.subarray(passed, passed + queued));
      this.agent = grown;
    }
    this.agentBase += passed;
  }

  private multipartUpload(): Promise<R2MultipartUpload> {
    this.upload ??= this.bucket.createMultipartUpload(this.key, { httpMetadata: recordingHttpMetadata });
    return this.upload;
  }

  /** Uploads in the background; `store` waits for every part, and a failed one fails it. */
  private uploadPart(partNumber: number, bytes: Uint8Array): void {
    const uploaded = this.multipartUpload().then((upload) => upload.uploadPart(partNumber, bytes));
    // Awaited by store; until then a failure must not count as unhandled.
    uploaded.catch(() => undefined);
    this.uploadedParts.push(uploaded);
  }
}
