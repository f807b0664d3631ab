#include "treeutil.h"
TestSuite(atomic, .init = fx_setup, .fini = fx_teardown);
