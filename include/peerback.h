/* peerback: peer-to-peer backup of a phone's NFC credentials, MIFARE cards,
 * virtual SIM profiles, chat history and contact groups to a paired host that
 * stores only ciphertext.
 *
 * This header gathers the per-layer headers. Every function returns 0 or a
 * positive count on success and a negative error (see peerback/error.h) on
 * failure unless its comment says otherwise. */
#ifndef PEERBACK_H
#define PEERBACK_H

#include "peerback/common.h"
#include "peerback/error.h"
#include "peerback/noise.h"
#include "peerback/frame.h"
#include "peerback/qr.h"
#include "peerback/store.h"
#include "peerback/kinds.h"
#include "peerback/event.h"
#include "peerback/provider.h"
#include "peerback/phone.h"

#define PB_VERSION_STRING "0.1.0"
/* The protocol version carried in every envelope. */
#define PB_PROTOCOL_VERSION 1

#endif
