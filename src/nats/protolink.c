/*
 * protolink.c - what src/core/protocol.c needs from the library when it is
 * compiled into the node for the arrays part of calls and replies over NATS
 * (sp__arrays_write/sp__arrays_parse, the one encoding of arrays). protocol.c's
 * error-frame decoder, which the node never uses, asks whether a code is
 * known; the library keeps its answer hidden, so the node gives it from the
 * same table, SP_ERRNO_MAP of the public header.
 */
#include "snakepit.h"

int sp__err_is_known(int code);

int sp__err_is_known(int code) {
  switch (code) {
#define SP__KNOWN(name, value, cat, desc) \
  case value: return 1;
    SP_ERRNO_MAP(SP__KNOWN)
#undef SP__KNOWN
    default: return 0;
  }
}
