/**
 * Call recordings (API.md, The person called): one WAV per call in the RECORDINGS bucket, G.711
 * μ-law at 8 kHz in two channels — the caller left, the agent right, sample by sample in time —
 * which is the audio Twilio and the voice model already speak, so nothing is transcoded.
 *
 * The 58-byte header is written here rather than with a WAV library: `wavefile` (the maintained
 * one, which runs in workerd) adds about 41 KB minified to the Worker for what is a fixed layout,
 * builds a file only from whole sample arrays (a live call streams its recording in parts), and
 * writes μ-law with a 20-byte fmt chunk and a `fact` count of all channels' samples, where the
 * format wants an 18-byte fmt chunk and the samples per channel.
 */

/** μ-law's silence (the code of a zero sample): what a channel holds where nobody speaks. */
export const MULAW_SILENCE = 0xff;
/** Sample frames a second (one byte per channel each). */
export const SAMPLE_RATE = 8000;
export const CHANNELS = 2;
/** RIFF header, fmt chunk (18 bytes: WAVEFORMATEX with cbSize 0), fact chunk, data chunk header. */
export const WAV_HEADER_BYTES = 58;
const WAVE_FORMAT_MULAW = 7;

export const RECORDING_CONTENT_TYPE = "audio/wav";

/**
 * Writes the header of a stereo μ-law WAV of `sampleFrames` frames into `target`'s first 58 bytes;
 * the data (2 × sampleFrames bytes, left and right interleaved) follows it.
 */
export function writeWavHeader(target: Uint8Array, sampleFrames: number): void {
  const dataBytes = sampleFrames * CHANNELS;
  const view = new DataView(target.buffer, target.byteOffset, WAV_HEADER_BYTES);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i += 1) view.setUint8(offset + i, text.charCodeAt(i));
  };
  ascii(0, "RIFF");
  view.setUint32(4, WAV_HEADER_BYTES - 8 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 18, true);
  view.setUint16(20, WAVE_FORMAT_MULAW, true);
  view.setUint16(22, CHANNELS, true);
  view.setUint32(24, SAMPLE_RATE, true);
  view.setUint32(28, SAMPLE_RATE * CHANNELS, true);
  view.setUint16(32, CHANNELS, true);
  view.setUint16(34, 8, true);
  view.setUint16(36, 0, true);
  // Every format but PCM should have a fact chunk: the length in sample frames.
  ascii(38, "fact");
  view.setUint32(42, 4, true);
  view.setUint32(46, sampleFrames, true);
  ascii(50, "data");
  view.setUint32(54, dataBytes, true);
}

/** A call's recording, once the call is over on the line: the core stores it, or throws it away. */
export interface CallRecording {
  /** Writes the whole WAV to R2 (its key is `recordingKey` of the call). */
  store(): Promise<void>;
  /** The recording is not kept: whatever of it already reached R2 is removed. */
  discard(): Promise<void>;
}

/** Where a call's recording is kept: per project and notification, one per call. */
export function recordingKey(params: { projectId: string; notificationId: string; callId: string }): string {
  return `${params.projectId}/${params.notificationId}/${params.callId}.wav`;
}

export const recordingHttpMetadata = { contentType: RECORDING_CONTENT_TYPE } as const;

/**
 * A simulated call's recording: its talk time (answer to hang-up) of silence on both channels,
 * in the layout of a live call's, so that what an application does with recordings can be tried
 * on the simulator.
 */
export function silentRecording(bucket: R2Bucket, key: string, talkMs: number): CallRecording {
  return {
    async store() {
      const sampleFrames = Math.round((talkMs * SAMPLE_RATE) / 1000);
      const wav = new Uint8Array(WAV_HEADER_BYTES + sampleFrames * CHANNELS).fill(MULAW_SILENCE);
      writeWavHeader(wav, sampleFrames);
      await bucket.put(key, wav, { httpMetadata: recordingHttpMetadata });
    },
    async discard() {},
  };
}
