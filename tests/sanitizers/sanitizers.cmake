# Sanitizer builds (SP_SANITIZE): every test of this folder runs with options that
# keep the tests meaningful under ASan/UBSan. Deferred to the end of the folder, so
# it reaches tests added after this file is included.
#
# - handle_segv/handle_sigbus/handle_sigfpe=0: a worker that crashes must die by its
#   signal, as it does in a normal build (the supervisor reports "killed by signal
#   SIGSEGV" and the last words); ASan would catch the signal and exit with 1 instead.
# - LeakSanitizer stays on: a leak in the library or the front ends fails the test
#   whose process leaked. Workers leave with _exit (src/worker/main.c), so it never
#   runs there and needs no suppressions for the embedded CPython's allocations.
# - UBSan prints a stack with each report and makes it fatal, so undefined
#   behaviour fails the test that hit it instead of scrolling past.
function(sp_sanitizer_test_env)
  get_property(tests DIRECTORY PROPERTY TESTS)
  if(NOT tests)
    return()
  endif()
  set_property(TEST ${tests} APPEND PROPERTY ENVIRONMENT
    "ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:handle_sigfpe=0:allow_user_segv_handler=1:detect_leaks=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endfunction()

if(SP_SANITIZE)
  cmake_language(DEFER CALL sp_sanitizer_test_env)
endif()
