from .envelope import error_response, exception_handler, is_api_request

__all__ = ["error_response", "exception_handler", "is_api_request"]
