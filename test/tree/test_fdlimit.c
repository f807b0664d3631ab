#include "treeutil.h"
TestSuite(fdlimit, .init = fx_setup, .fini = fx_teardown);
