import { expect } from "vitest";

/** Reading the WAVs the API serves, chunk by chunk as a player would, independently of src/. */

export interface Wav {
  format: { audioFormat: number; channels: number; sampleRate: number; byteRate: number; blockAlign: number; bitsPerSample: number; fmtSize: number; cbSize: number | null };
  /** The fact chunk's sample length (per channel). */
  sampleFrames: number;
  /** The data chunk, interleaved. */
  data: Uint8Array;
  /** Channel 0 (the caller) and channel 1 (the agent) of a two-channel, 8-bit file. */
  left: Uint8Array;
  right: Uint8Array;
}

export function readWav(bytes: Uint8Array): Wav {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  expect(text(0)).toBe("RIFF");
  expect(view.getUint32(4, true)).toBe(bytes.length - 8);
  expect(text(8)).toBe("WAVE");
  const chunks = new Map<string, { offset: number; size: number }>();
  for (let offset = 12; offset + 8 <= bytes.length; ) {
    const size = view.getUint32(offset + 4, true);
    chunks.set(text(offset), { offset: offset + 8, size });
    offset += 8 + size + (size % 2);
  }
  const fmt = chunks.get("fmt ");
  const fact = chunks.get("fact");
  const data = chunks.get("data");
  if (!fmt || !fact || !data) throw new Error(`missing chunks: ${[...chunks.keys()].join(", ")}`);
  expect(data.offset + data.size).toBe(bytes.length);
  const format = {
    audioFormat: view.getUint16(fmt.offset, true),
    channels: view.getUint16(fmt.offset + 2, true),
    sampleRate: view.getUint32(fmt.offset + 4, true),
    byteRate: view.getUint32(fmt.offset + 8, true),
    blockAlign: view.getUint16(fmt.offset + 12, true),
    bitsPerSample: view.getUint16(fmt.offset + 14, true),
    fmtSize: fmt.size,
    cbSize: fmt.size >= 18 ? view.getUint16(fmt.offset + 16, true) : null,
  };
  const samples = bytes.subarray(data.offset, data.offset + data.size);
  const frames = samples.length / 2;
  const left = new Uint8Array(frames);
  const right = new Uint8Array(frames);
  for (let i = 0; i < frames; i += 1) {
    left[i] = samples[2 * i]!;
    right[i] = samples[2 * i + 1]!;
  }
  return { format, sampleFrames: view.getUint32(fact.offset, true), data: samples, left, right };
}

/** The stereo μ-law layout every recording has. */
export const RECORDING_FORMAT = { audioFormat: 7, channels: 2, sampleRate: 8000, byteRate: 16000, blockAlign: 2, bitsPerSample: 8, fmtSize: 18, cbSize: 0 };

/** Where two byte arrays first differ (-1: equal), for arrays too long to diff in an assertion's message. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i += 1) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}
