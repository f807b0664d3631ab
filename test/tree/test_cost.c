#include "treeutil.h"
TestSuite(cost, .init = fx_setup, .fini = fx_teardown);
