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
#include "peerback/kinds.h"
#include "peerback/nfc.h"
#include "peerback/store.h"
#include "peerback/event.h"
#include "peerback/provider.h"
#include "peerback/phone.h"
#include "peerback/host.h"
#include "peerback/imd.h"
#include "peerback/version.h"

#endif
