#include "idf_mock.h"
