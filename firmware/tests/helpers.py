# Shared helpers for the firmware tests: build gateway-side frames and image blocks with the firmware's own codec.
import hashlib
import struct

from esltag.link import FLAG_DATA, PT_ECP_COMMAND, PT_IMAGE_BLOCK, FrameDecoder, crc16, encode_frame

ADDRESS = 0x0105  # group 1, ESL id 5


def command_frame(seq, payload, address=ADDRESS, flags=FLAG_DATA):
    return encode_frame(flags, seq, address, PT_ECP_COMMAND, payload)


def image_blocks(image, image_index=0, block_size=64):
    digest = hashlib.sha256(image).digest()[:8]
    blocks = []
    for index in range(0, (len(image) + block_size - 1) // block_size):
        data = image[index * block_size : (index + 1) * block_size]
        header = struct.pack("<B8sIHHH", image_index, digest, len(image), block_size, index, crc16(data))
        blocks.append(header + data)
    return blocks


def block_frame(seq, block, address=ADDRESS):
    return encode_frame(FLAG_DATA, seq, address, PT_IMAGE_BLOCK, block)


def frames(data):
    return FrameDecoder().feed(data)
